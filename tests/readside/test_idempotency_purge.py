"""The worker's idempotency purge: it runs in every worker, one pass at a time, through outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.metrics import IDEMPOTENCY_PURGED
from core.settings import Settings
from core.supervisor import TASK_FAILURES
from eventstore.base import IdempotencyClaim
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from tests.e2e.conventions.helpers import product_body
from tests.e2e.helpers import PRODUCTS
from tests.readside.test_supervision import eventually
from tests.readside.test_workers import Db, Worker, worker_settings
from tests.support.postgres import OwnPostgres, migrated_own_postgres
from workers.lease import PostgresLeases
from workers.purge import PURGE_TASK, IdempotencyPurge

Auth = Callable[..., dict[str, str]]
EXPIRE = sa.text(
    "UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE key = ANY(:keys)"
)


def purging(settings: Settings, mongodb_url: str, db: Db, worker: str) -> Settings:
    """A worker's settings with a purge pass every 50 ms, three records per batch."""
    update = {"idempotency_purge_seconds": 0.05, "idempotency_purge_batch": 3}
    return worker_settings(settings, mongodb_url, db, worker).model_copy(update=update)


def purged() -> float:
    """The purge metric's count so far."""
    return float(IDEMPOTENCY_PURGED._value.get())


async def keys_left(engine: AsyncEngine) -> set[str]:
    """The keys the table still holds."""
    async with engine.connect() as conn:
        return set((await conn.scalars(sa.text("SELECT key FROM idempotency_records"))).all())


async def expire(engine: AsyncEngine, keys: list[str]) -> None:
    """Age these records past their time to live (as 24 hours would)."""
    async with engine.begin() as conn:
        await conn.execute(EXPIRE, {"keys": keys})


async def completed(store: PostgresEventStore, keys: list[str]) -> None:
    """Claim and complete each key, as a command with an Idempotency-Key does."""
    for key in keys:
        claim = await store.claim_idempotency("alice", key, "h")
        assert isinstance(claim, IdempotencyClaim)
        await store.complete_idempotency(claim, {"key": key})


def gone(engine: AsyncEngine, keys: list[str]) -> Callable[[], Awaitable[bool]]:
    """A check that none of `keys` is left."""

    async def check() -> bool:
        return not await keys_left(engine) & set(keys)

    return check


async def test_the_worker_purges_expired_keys_and_a_purged_key_runs_afresh(
    api: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    mongodb_url: str,
    mongo_db: Db,
    engine: AsyncEngine,
    clean_db: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body, answers = product_body(), {}
    keys = [f"rename-{n}" for n in range(8)]
    registered = await api.post(PRODUCTS, json=body, headers=auth())
    rename = f"{PRODUCTS}/{registered.json()['id']}/rename"
    for key in [*keys, "recent"]:
        first = await api.post(
            rename, json={"name": key}, headers=auth() | {"Idempotency-Key": key}
        )
        answers[key] = first.json()
    await expire(engine, keys)
    before = purged()
    caplog.set_level(logging.INFO, logger="workers.purge")
    worker = Worker(purging(settings, mongodb_url, mongo_db, "w-purge"), [])
    try:
        await eventually(gone(engine, keys), "the expired keys to be purged")
        assert await keys_left(engine) == {"recent"}
        assert purged() - before == len(keys)
        assert "purged" in caplog.text
        assert worker.service.health()["tasks"][PURGE_TASK]["state"] == "running"
    finally:
        await worker.shutdown()

    # A purged key is new: the same request runs again (a new version), not replayed.
    again = await api.post(
        rename, json={"name": "rename-0"}, headers=auth() | {"Idempotency-Key": "rename-0"}
    )
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert again.json()["version"] == answers["recent"]["version"] + 1
    recent = await api.post(
        rename, json={"name": "recent"}, headers=auth() | {"Idempotency-Key": "recent"}
    )
    assert recent.headers["Idempotent-Replayed"] == "true" and recent.json() == answers["recent"]


async def test_one_worker_at_a_time_runs_a_pass(
    engine: AsyncEngine, pg_store: PostgresEventStore, clean_db: None
) -> None:
    keys = [f"k-{n}" for n in range(7)]
    await completed(pg_store, keys)
    await expire(engine, keys)
    leases, stop = PostgresLeases(engine), asyncio.Event()
    purge = IdempotencyPurge(pg_store, leases, batch=3, seconds=60, stop=stop)
    other = leases.lease(PURGE_TASK)  # another worker in the middle of its pass
    assert await other.try_acquire()
    try:
        assert await purge.sweep() == 0
        assert await keys_left(engine) == set(keys)
    finally:
        await other.release()
    assert await purge.sweep() == 7  # three batches, the last one short
    assert await keys_left(engine) == set()


@pytest.fixture
def own_postgres() -> Iterator[tuple[OwnPostgres, str]]:
    """A PostgreSQL server this test may stop and restart, and its database's URL."""
    with migrated_own_postgres() as server:
        yield server


def task_failures(kind: str) -> float:
    """The supervisor's failure count for the purge."""
    return float(TASK_FAILURES.labels(PURGE_TASK, kind)._value.get())


async def test_the_purge_fails_loudly_through_an_outage_and_resumes(
    own_postgres: tuple[OwnPostgres, str],
    settings: Settings,
    mongodb_url: str,
    mongo_db: Db,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, url = own_postgres
    own = purging(settings, mongodb_url, mongo_db, "w-outage").model_copy(
        update={"database_url": url}
    )
    engine = create_async_engine(url)
    store, before = PostgresEventStore(engine), task_failures("infrastructure")
    worker = Worker(own, [])
    try:
        tasks = lambda: worker.service.health()["tasks"]  # noqa: E731

        async def failing() -> bool:
            task = tasks().get(PURGE_TASK)
            return bool(task) and task["state"] == "failing"

        server.stop()
        await eventually(failing, "the purge to fail while PostgreSQL is down")
        assert tasks()[PURGE_TASK]["last_kind"] == "infrastructure"
        assert task_failures("infrastructure") > before
        assert "idempotency-purge failed (infrastructure)" in caplog.text
        server.start()
        await completed(store, ["after-1", "after-2"])
        await expire(engine, ["after-1", "after-2"])
        await eventually(gone(engine, ["after-1", "after-2"]), "the purge to resume", 30)

        async def running() -> bool:
            return bool(tasks()[PURGE_TASK]["state"] == "running")

        # The pass deletes, releases its lease, then reports health: a moment after the rows go.
        await eventually(running, "the purge to be reported running again", 10)
    finally:
        await worker.shutdown()
        await dispose(engine)
