"""Running the `ordertrail` CLI against the test's stores."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from command_api.app import create_app
from core.settings import Settings
from tests.support.processes import dramatiq_worker
from tests.support.servers import asgi_client

ORDERTRAIL = Path(sys.executable).parent / "ordertrail"
Cli = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]


@pytest.fixture
async def ops_api(read_settings: Settings, clean_db: None) -> AsyncIterator[httpx.AsyncClient]:
    """The command API over this test's read models (the worker's) and Redis, ops routes and all."""
    async with asgi_client(create_app(read_settings), "http://command-api") as client:
        yield client


@pytest.fixture
def cli(read_settings: Settings) -> Cli:
    """`await cli(ARGS...)` runs `ordertrail ARGS...` on the test's databases."""
    env = {
        **os.environ,
        "DATABASE_URL": read_settings.database_url,
        "MONGODB_URL": read_settings.mongodb_url,
        "MONGODB_DB": read_settings.mongodb_db,
        "JWT_SECRET": "unused-by-the-cli-" + "x" * 16,
    }

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        # In a thread: the in-process worker must keep running while the command waits for it.
        return await asyncio.to_thread(
            subprocess.run,
            [str(ORDERTRAIL), *args],
            env=env,
            stdin=subprocess.DEVNULL,  # a question (a confirmation) gets no answer: never hangs
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.fixture
def worker_process(read_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker on the test's stores and the run's Redis."""
    env = {
        "DATABASE_URL": read_settings.database_url,
        "MONGODB_URL": read_settings.mongodb_url,
        "MONGODB_DB": read_settings.mongodb_db,
        "REDIS_URL": read_settings.redis_url,
        "JWT_SECRET": "unused-by-the-cli-" + "x" * 16,
        "PROJECTION_TICK_SECONDS": "0.1",
    }
    with dramatiq_worker(env, tmp_path / "worker.log") as process:
        yield process
