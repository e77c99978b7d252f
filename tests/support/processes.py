"""Worker processes the tests start and stop themselves (by pid)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def dramatiq_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dramatiq workers.actors` with `env` added, its output in `log`; stopped afterwards."""
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.actors",
        "--processes",
        "1",
        "--threads",
        "2",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def uvicorn_server(app: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`uvicorn APP` as a child process on a free port; its base URL once /health answers."""
    from bench.context import stop, wait_http
    from tests.support.servers import free_port

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health", process)
        yield base
    finally:
        stop(process)
