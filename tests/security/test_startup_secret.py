"""A deployed API process without JWT_SECRET refuses to start (no default secret outside dev)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.servers import free_port


@pytest.mark.parametrize("app", ["command_api.main:app", "query_api.main:app"])
def test_an_api_process_without_a_secret_exits_at_once_and_says_why(app: str) -> None:
    """`uvicorn` of either API exits non-zero, naming JWT_SECRET, and never listens."""
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "ORDERTRAIL_ENV")}
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(free_port())]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "JWT_SECRET must be set" in done.stderr
    assert "Uvicorn running" not in done.stderr


@pytest.mark.parametrize("app", ["command_api.main:app", "query_api.main:app"])
def test_an_api_process_with_the_example_placeholder_secret_exits_naming_it(app: str) -> None:
    """`.env.example` copied as it is: the placeholder secret is refused in production mode."""
    env = {k: v for k, v in os.environ.items() if k != "ORDERTRAIL_ENV"}
    env |= {"JWT_SECRET": "change-me-to-a-long-random-secret", "ORDERTRAIL_ENV": "prod"}
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(free_port())]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "JWT_SECRET is a placeholder" in done.stderr
    assert "Uvicorn running" not in done.stderr
