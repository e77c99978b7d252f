"""A command API as a real uvicorn server for the feed's tests, and their tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.auth import mint_token
from core.settings import Settings
from tests.conftest import JWT_SECRET
from tests.reliability.faults import process_env
from tests.support.processes import uvicorn_server


def token(*scopes: str) -> dict[str, str]:
    """Authorization headers for `scopes`."""
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'feed-test', list(scopes))}"}


READER, WRITER = token("events:read"), token("commands:write")


@contextlib.contextmanager
def command_api(settings: Settings, logs: Path, **env: str) -> Iterator[str]:
    """The command API as a uvicorn child process; its base URL."""
    base = process_env(settings) | {"JWT_SECRET": JWT_SECRET, "ORDERTRAIL_ENV": "test"}
    with uvicorn_server("command_api.main:app", base | env, logs / "command.log") as url:
        yield url


@pytest.fixture(scope="module")
def server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A command API with a short heartbeat, a short send timeout and room for 3 waiters."""
    env = {"SSE_HEARTBEAT_SECONDS": "0.5", "SSE_SEND_TIMEOUT_SECONDS": "1"}
    logs = tmp_path_factory.mktemp("feed")
    with command_api(settings, logs, FEED_MAX_CLIENTS="3", **env) as url:
        yield url
