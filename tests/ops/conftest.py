"""Running the `ordertrail` CLI against the test's stores."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.settings import Settings

ORDERTRAIL = Path(sys.executable).parent / "ordertrail"
Cli = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]


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
