"""`ordertrail dev`: the whole system on one machine, supervised in the foreground.

Backing services (PostgreSQL, MongoDB-wire, Redis) come from ops.services; the ones it has to
start for MongoDB and Redis are children of the DevStack like the command API and the worker
and the query API. DevStack (ops.supervision) starts children in order, supervises them, and
stops them in reverse order; an embedded PostgreSQL is stopped after all of them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import httpx
import typer

from core.auth import SCOPES, mint_token
from ops.services import (
    DEV_DATABASE,
    LOCAL_PG_HOST,
    LOCAL_PG_PORT,
    ServiceError,
    ServiceHandle,
    drop_local_database,
    ensure_mongo,
    ensure_postgres,
    ensure_redis,
)
from ops.supervision import ChildProcess, DevStack, DevStackError

DEV_ENV_FILE = "dev.env"
DEV_TOKEN_FILE = "dev-token"
DEV_TOKEN_TTL_SECONDS = 24 * 3600
# The command API reads it (command_api/console): kept as a literal so the CLI need not import it.
CONSOLE_LOGIN_CODE_ENV = "ORDERTRAIL_CONSOLE_LOGIN_CODE"
DEV_MONGODB_DB = "ordertrail"


@dataclass(frozen=True)
class DevOptions:
    """What `ordertrail dev` was asked for."""

    host: str
    port: int
    state_dir: Path
    query_port: int = 8001
    reset: bool = False


class ResetRefused(ValueError):
    """--reset was asked of data the dev stack does not own (a URL from the environment)."""


def reset_dev_data(
    state_dir: Path,
    environ: Mapping[str, str],
    database: str = DEV_DATABASE,
    server: tuple[str, int] = (LOCAL_PG_HOST, LOCAL_PG_PORT),
) -> list[str]:
    """Delete the dev stack's own data before it starts; what was deleted, for the log.

    Only what `ordertrail dev` itself created: the embedded servers' data directories and the
    `ordertrail` database it made on the machine's PostgreSQL. A DATABASE_URL or MONGODB_URL
    from the environment may point anywhere (production included), so --reset refuses them.
    Redis is left alone: it holds wake-up messages only, never state.
    """
    given = [name for name in ("DATABASE_URL", "MONGODB_URL") if environ.get(name)]
    if given:
        raise ResetRefused(
            f"--reset only deletes the dev stack's own data, and {' and '.join(given)} "
            "is set: unset it, or reset that database yourself"
        )
    done = []
    for name in ("postgres", "mongo"):
        directory = state_dir.expanduser().resolve() / name
        if directory.is_dir():
            shutil.rmtree(directory)
            done.append(f"deleted {directory}")
    if drop_local_database(*server, database):
        done.append(f"dropped database {database} on {server[0]}:{server[1]}")
    return done


def run_dev(options: DevOptions) -> int:
    """Run the dev stack in the foreground until SIGINT/SIGTERM; return the exit code."""
    _interrupt_on_signals()
    cleanup = contextlib.ExitStack()
    try:
        return _run(options, cleanup)
    except KeyboardInterrupt:
        typer.echo("\nstopping ordertrail dev stack")
        return 0
    except ResetRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except ServiceError as exc:  # a server it needs cannot be found or started
        typer.echo(f"error: {exc}", err=True)
        return 3
    except DevStackError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    finally:
        # Stopping children and servers must not be cut short by a second Ctrl-C.
        _ignore_signals()
        cleanup.close()


@dataclass(frozen=True)
class Services:
    """The backing services the dev stack uses."""

    postgres: ServiceHandle
    mongo: ServiceHandle
    redis: ServiceHandle


def _run(options: DevOptions, cleanup: contextlib.ExitStack) -> int:
    """Bring everything up, report how to use it, then supervise until a child dies."""
    if options.reset:
        for line in reset_dev_data(options.state_dir, os.environ):
            typer.echo(f"reset: {line}")
    state_dir = _prepare_state_dir(options.state_dir)
    stack = DevStack()
    services = _ensure_services(state_dir, stack, cleanup)
    secret = os.environ.get("JWT_SECRET") or load_or_create_secret(state_dir)
    _export_dev_env(services, secret)
    # The console link logs in once with this code (the token itself never goes in a URL).
    login_code = secrets.token_urlsafe(18)
    os.environ[CONSOLE_LOGIN_CODE_ENV] = login_code
    _apply_migrations(services.postgres.url)
    stack.start_all(dev_children(options, dict(os.environ)))
    token = _write_dev_token(state_dir, secret)
    _print_banner(options, services, token, state_dir, login_code)
    dead = stack.supervise()
    raise DevStackError(f"{dead.spec.name} (pid {dead.pid}) exited with code {dead.returncode}")


def _ensure_services(state_dir: Path, stack: DevStack, cleanup: contextlib.ExitStack) -> Services:
    """Find or start PostgreSQL, MongoDB-wire and Redis; whatever we start is stopped on exit."""
    postgres = _announce("postgres", ensure_postgres(state_dir))
    cleanup.callback(postgres.stop)
    # Registered after PostgreSQL's stop, so it runs first: every child stops before PostgreSQL.
    cleanup.callback(stack.stop_all)
    # Servers started for these are stack children, so stop_all stops them, after the worker.
    mongo = _announce("mongo", ensure_mongo(state_dir, stack.launch))
    redis = _announce("redis", ensure_redis(state_dir, stack.launch))
    return Services(postgres, mongo, redis)


def _announce(name: str, service: ServiceHandle) -> ServiceHandle:
    """Say which server is used, and pass it on."""
    typer.echo(f"{name} ({service.kind}): {_safe_url(service.url)}")
    return service


def dev_children(options: DevOptions, env: dict[str, str]) -> list[ChildProcess]:
    """The processes `ordertrail dev` supervises, in start order."""
    api = _uvicorn_child("command-api", "command_api.main:app", options.host, options.port, env)
    query = _uvicorn_child("query-api", "query_api.main:app", options.host, options.query_port, env)
    return [api, query, _worker_child(env)]


def _uvicorn_child(name: str, app: str, host: str, port: int, env: dict[str, str]) -> ChildProcess:
    """An ASGI app served by uvicorn, ready once its /health answers."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    health = f"{base_url(host, port)}/health"
    ready = partial(_answers_200, health)
    return ChildProcess(name, argv, env, ready, f"a 200 from {health}", listen=(host, port))


def _worker_child(env: dict[str, str]) -> ChildProcess:
    """A dramatiq worker: projections into MongoDB and order fulfilment."""
    argv = [sys.executable, "-m", "dramatiq", "workers.actors"]
    argv += ["--processes", "1", "--threads", "2"]
    # No health endpoint: still running after a second means it imported and booted.
    return ChildProcess("worker", argv, env, settle_seconds=1.0)


def base_url(host: str, port: int) -> str:
    """The http URL a client on this machine should use for a server bound to host:port."""
    # A wildcard bind address is not something a client can connect to; use loopback instead.
    client_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in client_host:
        client_host = f"[{client_host}]"
    return f"http://{client_host}:{port}"


def stored_secret(state_dir: Path) -> str | None:
    """The JWT secret an earlier `ordertrail dev` saved in `<state_dir>/dev.env`, if any."""
    env_file = state_dir / DEV_ENV_FILE
    if not env_file.is_file():
        return None
    for line in env_file.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "JWT_SECRET" and value.strip():
            return value.strip()
    return None


def load_or_create_secret(state_dir: Path) -> str:
    """Reuse the saved dev JWT secret, or generate and save one (so tokens survive restarts)."""
    existing = stored_secret(state_dir)
    if existing is not None:
        return existing
    secret = secrets.token_urlsafe(32)
    _write_private(state_dir / DEV_ENV_FILE, f"JWT_SECRET={secret}\n")
    return secret


def _prepare_state_dir(state_dir: Path) -> Path:
    """Create the state directory and return its absolute path."""
    state_dir = state_dir.expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    return state_dir


def _export_dev_env(services: Services, secret: str) -> None:
    """Put the dev settings in our own environment, which the children then inherit."""
    # Our own environment too, because migrations run in-process and may read settings.
    os.environ.update(
        DATABASE_URL=services.postgres.url,
        MONGODB_URL=services.mongo.url,
        REDIS_URL=services.redis.url,
        JWT_SECRET=secret,
        ORDERTRAIL_ENV="dev",
        PYTHONUNBUFFERED="1",
    )
    os.environ.setdefault("MONGODB_DB", DEV_MONGODB_DB)


def _apply_migrations(database_url: str) -> None:
    """Bring the schema up to date."""
    from ops import migrate

    typer.echo("applying migrations")
    migrate.upgrade(database_url)


def _write_dev_token(state_dir: Path, secret: str) -> str:
    """Mint an all-scopes dev token and save it in `<state_dir>/dev-token`."""
    token = mint_token(secret, "dev", list(SCOPES), ttl_seconds=DEV_TOKEN_TTL_SECONDS)
    _write_private(state_dir / DEV_TOKEN_FILE, token + "\n")
    return token


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: it holds a secret or a token."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _print_banner(
    options: DevOptions, services: Services, token: str, state: Path, login_code: str
) -> None:
    """Tell the developer where everything is (plain echo: rich would wrap the long token)."""
    url = base_url(options.host, options.port)
    mongo, redis = services.mongo, services.redis
    typer.echo("\nordertrail dev stack is running")
    query_url = base_url(options.host, options.query_port)
    typer.echo(f"  API:       {url}   (commands; docs at {url}/docs)")
    typer.echo(f"  Query API: {query_url}   (read models; docs at {query_url}/docs)")
    typer.echo(f"  Database:  {_safe_url(services.postgres.url)} ({services.postgres.kind})")
    typer.echo(f"  MongoDB:   {_safe_url(mongo.url)} ({mongo.kind}), database {_mongo_db()}")
    typer.echo(f"  Redis:     {_safe_url(redis.url)} ({redis.kind})")
    typer.echo(
        f"  Console:   {url}/console/#code={login_code}   (logs in once; then paste a token)"
    )
    typer.echo(f"  Token:     {token}")
    typer.echo(f"  (all scopes, 24 h; saved in {state / DEV_TOKEN_FILE}; more: ordertrail token)")
    typer.echo("Press Ctrl-C to stop.\n")


def _mongo_db() -> str:
    """The read-model database name the children use."""
    return os.environ.get("MONGODB_DB") or DEV_MONGODB_DB


def _safe_url(url: str) -> str:
    """A service URL with any password masked, for printing."""
    # Not make_url: it rejects multi-host MongoDB URLs and re-encodes a socket path in the query.
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (at and colon):
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def _answers_200(url: str) -> bool:
    """One health probe; connection errors just mean 'not yet'."""
    try:
        # trust_env=False: an HTTP(S)_PROXY in the environment must not intercept localhost.
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _interrupt_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt, which unwinds into the cleanup."""
    # SIGINT explicitly too: a parent that started us with SIGINT ignored would otherwise win.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """Signal handler: stop whatever we are doing and shut down."""
    raise KeyboardInterrupt


def _ignore_signals() -> None:
    """Ignore further SIGINT/SIGTERM while shutting down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
