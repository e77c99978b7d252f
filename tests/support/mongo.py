"""A MongoDB-wire server for the test run: TEST_MONGODB_URL, else a secantusdb child process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.support.servers import free_port


def wait_for_mongo(url: str, timeout: float = 30.0) -> None:
    """Block until the server answers ping."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with MongoClient(url, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
                return
        except PyMongoError:
            if time.monotonic() > deadline:
                raise


@contextlib.contextmanager
def secantus_server(port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A secantusdb server with in-memory storage as a child process; stopped by pid."""
    port = port or free_port()
    binary = Path(sys.executable).parent / "secantusd-py"
    argv = [str(binary), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--storage-path", ":memory:", "--log-level", "WARNING"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"mongodb://127.0.0.1:{port}"
    try:
        wait_for_mongo(url)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def mongo_url() -> Iterator[str]:
    """The server this run uses."""
    if url := os.environ.get("TEST_MONGODB_URL"):
        yield url
        return
    with secantus_server() as (url, _):
        yield url


class OwnMongo:
    """A secantusdb server on a fixed port with its data on disk: stopped and restarted by pid."""

    def __init__(self, port: int, storage: Path) -> None:
        self.port, self.storage = port, storage
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (reopening the same data) and wait until it answers ping."""
        binary = Path(sys.executable).parent / "secantusd-py"
        argv = [str(binary), "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--storage-path", str(self.storage), "--log-level", "WARNING"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_mongo(self.url)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
