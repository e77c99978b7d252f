"""PostgreSQL: an append the server aborts (deadlock, serialization failure) is run again.

Two writers inserting rows for the same two streams in opposite orders wait for each other's
unique keys: PostgreSQL breaks the cycle by aborting one transaction (SQLSTATE 40P01). Here
the other writer is a session of the test's own, so the crossing happens on cue.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from domain.catalog import Product
from domain.values import product_id
from eventstore.base import IdempotencyClaim
from eventstore.driver import CONNECT_ARGS_OPTION, dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import AppendResult, NewEvent, StreamAppend, WrongExpectedVersion
from eventstore.repository import Context, Repository
from tests.conftest import asyncpg_dsn

pytestmark = pytest.mark.usefixtures("clean_db")
T = TypeVar("T")

# The store's sessions look for a deadlock after 50 ms, the other writer's after 10 s: the
# store's transaction is always the one PostgreSQL aborts.
STORE_DEADLOCK_TIMEOUT, OTHER_DEADLOCK_TIMEOUT = "50ms", "10s"
INSERT = (
    "INSERT INTO events (event_id, stream_id, stream_type, version, type, data, recorded_at) "
    "VALUES (gen_random_uuid(), $1, 'Thing', $2, 'ThingHappened', '{}', now())"
)


@pytest.fixture
def name() -> str:
    """The application_name of the store's sessions, to find them in pg_stat_activity."""
    return f"deadlock-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(database_url: str, name: str) -> AsyncIterator[PostgresEventStore]:
    """A store of its own pools, its sessions tagged and quick to detect a deadlock."""
    args = {
        "server_settings": {"application_name": name, "deadlock_timeout": STORE_DEADLOCK_TIMEOUT}
    }
    engine = create_async_engine(
        database_url, connect_args=args, execution_options={CONNECT_ARGS_OPTION: args}
    )
    yield PostgresEventStore(engine)
    await dispose(engine)


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Another writer's session, in a transaction the test ends."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    await conn.execute(f"SET deadlock_timeout = '{OTHER_DEADLOCK_TIMEOUT}'")
    await conn.execute("BEGIN")
    yield conn
    await conn.close()


def one(stream_id: UUID | None = None) -> StreamAppend:
    """An append of one event to a new stream."""
    event = NewEvent("ThingHappened", {"n": 1}, datetime.now(UTC))
    return StreamAppend(stream_id or uuid4(), "Thing", 0, [event], {"actor": "t"})


async def waiting(conn: asyncpg.Connection, name: str, count: int) -> None:
    """Return once `count` of the store's sessions wait for a lock (at most 5 s)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
        "AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        await conn.execute("SELECT pg_stat_clear_snapshot()")  # kept per transaction otherwise
        if await conn.fetchval(query, name) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} of the store's sessions never waited for a lock")


def registering(sku: str) -> Callable[[Product | None], Product]:
    """A decision that registers the product, anew at every attempt."""
    return lambda _: Product.register(sku, "Mug", "", Decimal("3.00"), "kitchen")


def started(coroutine: Awaitable[T]) -> asyncio.Task[T]:
    """The coroutine running on its own."""
    return asyncio.ensure_future(coroutine)


async def batch_behind_two_blocked_appends(
    store: PostgresEventStore, gate: asyncpg.Connection, name: str, queued: list[StreamAppend]
) -> list[asyncio.Task[list[AppendResult]]]:
    """`queued` sent while two appends are in flight, so that they go out as one batch.

    `gate` holds the keys the two in-flight appends need, and rolls back once the rest queued.
    """
    blocked = [one(), one()]
    await gate.execute("BEGIN")
    for append in blocked:
        await gate.execute(INSERT, append.stream_id, 1)
    first = [started(store.append(append)) for append in blocked]
    await waiting(gate, name, 2)
    tasks = [started(store.append(append)) for append in queued]
    await asyncio.sleep(0.05)  # every one of them in the queue
    await gate.execute("ROLLBACK")
    assert all(len(result) == 1 for result in await asyncio.gather(*first))
    return tasks


async def test_a_batch_aborted_by_a_deadlock_retries_each_append_and_unrelated_ones_land(
    store: PostgresEventStore, other: asyncpg.Connection, database_url: str, name: str
) -> None:
    low, high = sorted([uuid4(), uuid4()])
    await other.execute(INSERT, high, 1)  # the other writer holds `high` first
    gate = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        unrelated = [one(), one(), one()]
        queued = [one(low), one(high), *unrelated]
        tasks = await batch_behind_two_blocked_appends(store, gate, name, queued)
        await waiting(gate, name, 1)  # the batch wrote `low`, and waits for `high`
        # The other writer now waits for `low`: PostgreSQL aborts the batch, not the other
        # writer, whose insert goes on, unless the batch's retry of `low` alone got in first.
        with contextlib.suppress(asyncpg.UniqueViolationError):
            await other.execute(INSERT, low, 1)
        await other.execute("COMMIT")  # a rollback if its insert lost
    finally:
        await gate.close()
    outcomes: list[Any] = await asyncio.gather(*tasks, return_exceptions=True)
    # The two that raced the other writer won or lost that race, as they would have alone...
    assert all(isinstance(o, list | WrongExpectedVersion) for o in outcomes[:2]), outcomes
    # ...and the deadlock cost the unrelated appends nothing.
    assert all(isinstance(o, list) and o[0].version == 1 for o in outcomes[2:]), outcomes
    for append in queued:
        assert len(await store.read_stream(append.stream_id)) == 1


async def test_a_batch_inserts_by_stream_id_whatever_the_order_appends_arrived_in(
    store: PostgresEventStore, database_url: str, name: str
) -> None:
    ids = sorted(uuid4() for _ in range(5))
    gate = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tasks = await batch_behind_two_blocked_appends(
            store, gate, name, [one(stream_id) for stream_id in reversed(ids)]
        )
    finally:
        await gate.close()
    results = await asyncio.gather(*tasks)
    commits = {result[0].position.transaction_id for result in results}
    assert len(commits) == 1  # one batch...
    positions = [result[0].position for result in reversed(results)]
    assert positions == sorted(positions)  # ...whose rows went in by stream id, lowest first


async def test_a_keyed_command_crossing_a_writer_that_holds_its_record_wins(
    store: PostgresEventStore, other: asyncpg.Connection, name: str
) -> None:
    """An idempotent command's append crosses another writer holding its key's record, and wins.

    Its one statement locks the record before it inserts, so it waits rather than deadlocks.
    """
    sku = f"DEADLOCK-{uuid.uuid4().hex[:8]}"
    stream_id = product_id(sku)
    claim = await store.claim_idempotency("alice", sku, "hash")
    assert isinstance(claim, IdempotencyClaim)
    # The other writer locks the key's record; the command's statement waits for it, and
    # the other writer then writes the stream's first version and gives up.
    lock = "SELECT 1 FROM idempotency_records WHERE actor = 'alice' AND key = $1 FOR UPDATE"
    await other.execute(lock, sku)
    context = Context(claim=claim, respond=lambda o: {"version": o.version})
    command = started(Repository(store).execute(Product, stream_id, registering(sku), context))
    await waiting(other, name, 1)
    await other.execute(INSERT, stream_id, 1)
    await other.execute("ROLLBACK")
    outcome = await command
    assert (outcome.version, outcome.created) == (1, True)
    assert [e.type for e in await store.read_stream(stream_id)] == ["ProductRegistered"]
    assert await store.claim_idempotency("alice", sku, "hash") == {"version": 1}
