"""Fixtures: a fresh PostgreSQL database per run, the event store, the command API client."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from command_api.app import create_app
from core.auth import SCOPES, mint_token
from core.settings import Settings
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.repository import Repository
from ops.migrate import upgrade
from query_api.app import create_app as create_query_app
from tests.support.leftovers import descendants, end
from tests.support.redis import OwnRedis
from tests.support.servers import (
    asgi_client,
    free_port,
    in_thread,
    postgres_admin_url,
    run_sql,
    with_database,
)
from workers.bootstrap import subscription_service
from workers.service import SubscriptionService

JWT_SECRET = "test-secret-" + uuid.uuid4().hex


def asyncpg_dsn(url: str) -> str:
    """A plain libpq-style URL (asyncpg.connect does not take SQLAlchemy's driver suffix)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy async form of a PostgreSQL URL."""
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--long` runs the reliability tests in their long form (minutes instead of seconds)."""
    parser.addoption(
        "--long",
        action="store_true",
        default=os.environ.get("ORDERTRAIL_LONG") == "1",
        help="long form of the reliability suite: 5-minute soak, longer fault windows",
    )


# A long-form test runs for minutes by design (the 5-minute soak; 5 minutes of fault injection,
# then catching up under faults): it gets this timeout instead of the short form's 300 s.
LONG_FORM_TIMEOUT = 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the long form, the reliability tests get a timeout that fits their length."""
    if not config.getoption("--long"):
        return
    for item in items:
        if "tests/reliability/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(LONG_FORM_TIMEOUT), append=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Servers a test body started go with it, even when a timeout cut it off mid-way.

    A test killed by pytest-timeout never reaches its own clean-up: its coroutine is left
    suspended, and the servers it started held their ports and CPU for the tests after it.
    """
    before = descendants(os.getpid())
    yield
    left = descendants(os.getpid()) - before
    if left:
        end(left)


@pytest.fixture(scope="session")
def long_form(request: pytest.FixtureRequest) -> bool:
    """Whether this run is the long form (`pytest --long` or ORDERTRAIL_LONG=1)."""
    return bool(request.config.getoption("--long"))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """An admin URL of the server this run uses."""
    with postgres_admin_url() as url:
        yield asyncpg_dsn(url)


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database of its own for this test run (SQLAlchemy async URL)."""
    name = f"ordertrail_test_{uuid.uuid4().hex[:12]}"
    run_sql(pg_admin_url, f'CREATE DATABASE "{name}"')
    url = sqlalchemy_url(with_database(pg_admin_url, name))
    in_thread(lambda: upgrade(url))
    yield url
    run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_REDIS_URL, else a Redis of this run's own (never the machine's shared one)."""
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    server = OwnRedis(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis of the test's own, which it may stop and start again."""
    server = OwnRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, mongodb_url: str) -> Settings:
    """Settings as a deployed process would read them."""
    env = {"DATABASE_URL": database_url, "JWT_SECRET": JWT_SECRET, "ORDERTRAIL_ENV": "test"}
    env |= {"REDIS_URL": redis_url, "MONGODB_URL": mongodb_url}
    env["MONGODB_DB"] = f"ordertrail_test_{uuid.uuid4().hex[:8]}"
    return Settings(**env)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """One pool for the run."""
    engine = create_async_engine(database_url, pool_size=20, max_overflow=10)
    yield engine
    await dispose(engine)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> None:
    """Empty tables, so reads of 'everything' see only this test's events."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("TRUNCATE events, idempotency_records, snapshots RESTART IDENTITY")
        )


@pytest.fixture
def pg_store(engine: AsyncEngine) -> PostgresEventStore:
    """The PostgreSQL event store."""
    return PostgresEventStore(engine)


@pytest.fixture
def repository(pg_store: PostgresEventStore) -> Repository:
    """A repository over the PostgreSQL store."""
    return Repository(pg_store)


@pytest.fixture(scope="session")
async def command_app(settings: Settings) -> AsyncIterator[object]:
    """The command API with its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(command_app: object) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the command API (in process, real database)."""
    transport = httpx.ASGITransport(app=command_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://command-api") as client:
        yield client


@pytest.fixture
def auth() -> Callable[..., dict[str, str]]:
    """Authorization headers for a subject with the given scopes (default: commands:write)."""

    def make(*scopes: str, sub: str = "alice", ttl: int = 600) -> dict[str, str]:
        token = mint_token(JWT_SECRET, sub, list(scopes or ("commands:write",)), ttl)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def admin(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Headers of a caller holding every scope."""
    return auth(*SCOPES, sub="admin")


def pytest_report_header() -> str:
    """Say which servers the run uses."""
    return f"TEST_DATABASE_URL={'set' if os.environ.get('TEST_DATABASE_URL') else 'unset'}"


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """A MongoDB-wire server for this run."""
    from tests.support.mongo import mongo_url

    with mongo_url() as url:
        yield url


@pytest.fixture(scope="session")
async def mongo_client(mongodb_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """One async client for the run."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
async def mongo_db(
    mongo_client: AsyncMongoClient[dict[str, Any]],
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A database of its own for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    try:
        await mongo_client.drop_database(name)
    except AutoReconnect:  # a pooled connection the server closed while a long test ran
        await mongo_client.drop_database(name)


@pytest.fixture
def read_settings(
    settings: Settings, mongodb_url: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> Settings:
    """Settings pointing the query API and the worker at this test's read-model database."""
    update = {"mongodb_url": mongodb_url, "mongodb_db": mongo_db.name}
    return settings.model_copy(update=update | {"projection_tick_seconds": 0.05})


@pytest.fixture
async def worker(read_settings: Settings, clean_db: None) -> AsyncIterator[SubscriptionService]:
    """A worker following the store (as `dramatiq workers.actors` would, in process)."""
    service, stop = subscription_service(read_settings), asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    yield service
    stop.set()
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def bare_query(read_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the query API (in process, real MongoDB-wire server), no worker."""
    app = create_query_app(read_settings)
    async with asgi_client(app, "http://query-api") as client:
        yield client


@pytest.fixture
async def query(bare_query: httpx.AsyncClient, worker: SubscriptionService) -> httpx.AsyncClient:
    """The query API with a worker keeping its read models current."""
    return bare_query


@pytest.fixture
def reader(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Headers of a dashboard (queries:read)."""
    return auth("queries:read", sub="dashboard")
