"""Worker processes the tests start and stop themselves (by pid)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.context import WORKER_ARGV


@contextlib.contextmanager
def dramatiq_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dramatiq workers.actors` with `env` added, its output in `log`; stopped afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            WORKER_ARGV, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
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
    from bench.context import stop, uvicorn_argv, wait_http
    from tests.support.servers import free_port

    port = free_port()
    argv = uvicorn_argv(app, port)
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
