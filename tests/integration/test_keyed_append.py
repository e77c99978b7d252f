"""Keyed appends on PostgreSQL: the claim in one statement, the append with its response in one
statement (one event) or one transaction (more), and every edge between a claim and its append."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from eventstore.base import ClaimLost, Completion, IdempotencyClaim, IdempotencyConflict
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import AppendResult, NewEvent, OutcomeUnknown, StreamAppend
from tests.conftest import asyncpg_dsn
from tests.support.cutting_proxy import CuttingProxy, command_complete, simple_query

Respond = Callable[[list[AppendResult]], dict[str, object]]


def by_token(results: list[AppendResult]) -> dict[str, object]:
    """An answer naming the position by its token, as the command API's does."""
    return {"version": results[0].version, "position": results[0].position.token}


def by_number(results: list[AppendResult]) -> dict[str, object]:
    """An answer using the position otherwise: it cannot be filled in by the statement."""
    return {"version": results[0].version, "position": results[0].position.position}


def appending(count: int) -> StreamAppend:
    """`count` events on a new stream (one: the single statement; more: the transaction)."""
    batch = [NewEvent("Tick", {"i": i}, datetime.now(UTC)) for i in range(count)]
    return StreamAppend(uuid4(), "Ticker", 0, batch, {"actor": "t"})


@pytest.fixture
def expiring(engine: AsyncEngine) -> PostgresEventStore:
    """A store whose in-flight locks run out at once, so a repeat of a key takes it over."""
    return PostgresEventStore(engine, lock_seconds=0)


@pytest.mark.parametrize("count", [1, 2])
async def test_a_key_taken_over_before_the_append_appends_nothing(
    expiring: PostgresEventStore, count: int
) -> None:
    key = uuid4().hex
    first = await expiring.claim_idempotency("alice", key, "h")
    second = await expiring.claim_idempotency("alice", key, "h")  # its lock ran out: taken over
    assert isinstance(first, IdempotencyClaim) and isinstance(second, IdempotencyClaim)
    append = appending(count)
    with pytest.raises(ClaimLost):
        await expiring.append(append, completion=Completion(first, by_token))
    assert await expiring.read_stream(append.stream_id) == []
    results = await expiring.append(append, completion=Completion(second, by_token))
    assert await expiring.claim_idempotency("alice", key, "h") == by_token(results)


@pytest.mark.parametrize("respond", [by_token, by_number])
@pytest.mark.parametrize("count", [1, 2])
async def test_the_stored_answer_is_the_one_the_append_got(
    pg_store: PostgresEventStore, count: int, respond: Respond
) -> None:
    key = uuid4().hex
    claim = await pg_store.claim_idempotency("alice", key, "h")
    assert isinstance(claim, IdempotencyClaim)
    append = appending(count)
    results = await pg_store.append(append, completion=Completion(claim, respond))
    stored = await pg_store.read_stream(append.stream_id)
    assert results[0].position == stored[-1].position  # the real position, not a stand-in
    assert await pg_store.claim_idempotency("alice", key, "h") == respond(results)


async def test_a_claim_that_waited_for_a_concurrent_one_sees_its_body(
    pg_store: PostgresEventStore, database_url: str
) -> None:
    """The other claim commits after the statement's snapshot: it is read again, not missed."""
    key = uuid4().hex
    other = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await other.execute("BEGIN")
        await other.execute(
            "INSERT INTO idempotency_records (actor, key, request_hash, status, lock_token, "
            "locked_until, expires_at) VALUES ('alice', $1, 'other', 'in_flight', "
            "gen_random_uuid(), now() + interval '1 minute', now() + interval '1 day')",
            key,
        )
        claiming = asyncio.ensure_future(pg_store.claim_idempotency("alice", key, "mine"))
        await asyncio.sleep(0.3)  # the claim now waits for the uncommitted record
        await other.execute("COMMIT")
        with pytest.raises(IdempotencyConflict) as conflict:
            await claiming
    finally:
        await other.close()
    assert conflict.value.reason == "body_mismatch"


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[tuple[PostgresEventStore, CuttingProxy]]:
    """A store whose connections go through a proxy that can cut them."""
    url = make_url(database_url)
    proxy = CuttingProxy((url.host or "127.0.0.1", url.port or 5432))
    await proxy.start()
    engine = create_async_engine(url.set(host="127.0.0.1", port=proxy.port))
    yield PostgresEventStore(engine), proxy
    await dispose(engine)
    await proxy.stop()


@pytest.mark.parametrize("reply_lost", [True, False])
async def test_a_transaction_cut_at_its_commit_is_outcome_unknown(
    proxied: tuple[PostgresEventStore, CuttingProxy], pg_store: PostgresEventStore, reply_lost: bool
) -> None:
    store, proxy = proxied
    key, append = uuid4().hex, appending(2)
    claim = await store.claim_idempotency("alice", key, "h")
    assert isinstance(claim, IdempotencyClaim)
    if reply_lost:
        proxy.arm(to_client=command_complete(b"COMMIT"))
    else:
        proxy.arm(to_server=simple_query(b"COMMIT"))
    with pytest.raises(OutcomeUnknown):
        await store.append(append, completion=Completion(claim, by_token))
    assert proxy.cuts == 1
    stored = await pg_store.read_stream(append.stream_id)
    assert len(stored) == (2 if reply_lost else 0)
    again = pg_store.claim_idempotency("alice", key, "h")
    if reply_lost:  # committed with its answer
        assert await again == {"version": 2, "position": stored[-1].token}
    else:  # nothing committed: the claim is still in flight
        with pytest.raises(IdempotencyConflict):
            await again
