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
from eventstore.records import (
    AppendResult,
    NewEvent,
    OutcomeUnknown,
    StreamAppend,
    WrongExpectedVersion,
)
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


async def claimed(store: PostgresEventStore, key: str) -> IdempotencyClaim:
    """A fresh claim on `key`."""
    claim = await store.claim_idempotency("alice", key, "h")
    assert isinstance(claim, IdempotencyClaim)
    return claim


async def test_keyed_appends_in_flight_together_share_one_commit(
    pg_store: PostgresEventStore,
) -> None:
    """Twelve at once: beyond the two that go out alone, they go out as batches (one
    transaction each) and every stored answer names its own append's real position."""
    keys = [uuid4().hex for _ in range(12)]
    claims = [await claimed(pg_store, key) for key in keys]
    appends = [appending(1) for _ in keys]
    results = await asyncio.gather(
        *(
            pg_store.append(a, completion=Completion(c, by_token))
            for a, c in zip(appends, claims, strict=True)
        )
    )
    transactions = {r[0].position.transaction_id for r in results}
    assert len(transactions) < len(keys)  # some went out together
    for key, append, result in zip(keys, appends, results, strict=True):
        stored = await pg_store.read_stream(append.stream_id)
        assert [e.position for e in stored] == [result[0].position]
        assert await pg_store.claim_idempotency("alice", key, "h") == by_token(result)


async def test_a_batch_refuses_only_the_append_whose_key_was_taken_over(
    expiring: PostgresEventStore, database_url: str
) -> None:
    """Keyed and keyless appends in one batch: the one whose claim is gone raises ClaimLost
    and appends nothing; one whose check fails keeps its claim in flight; the rest commit."""
    lost_key, stale_key = uuid4().hex, uuid4().hex
    lost = await claimed(expiring, lost_key)
    await claimed(expiring, lost_key)  # its lock ran out at once: taken over
    stale = await claimed(expiring, stale_key)
    keyless = [appending(1) for _ in range(6)]
    lost_append, stale_append = appending(1), appending(1)
    stale_append = StreamAppend(stale_append.stream_id, "Ticker", 4, stale_append.events)
    outcomes = await asyncio.gather(
        *(expiring.append(a) for a in keyless[:3]),
        expiring.append(lost_append, completion=Completion(lost, by_token)),
        expiring.append(stale_append, completion=Completion(stale, by_token)),
        *(expiring.append(a) for a in keyless[3:]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], ClaimLost)
    assert isinstance(outcomes[4], WrongExpectedVersion)
    assert all(isinstance(o, list) for o in outcomes[:3] + outcomes[5:])
    assert await expiring.read_stream(lost_append.stream_id) == []
    assert await expiring.read_stream(stale_append.stream_id) == []
    for append in keyless:
        assert len(await expiring.read_stream(append.stream_id)) == 1
    together = {outcomes[n][0].position.transaction_id for n in (2, 5)}  # type: ignore[index]
    assert len(together) == 1  # the queued ones, both claims among them, went out as one batch
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT status, response FROM idempotency_records WHERE key = $1", stale_key
        )
    finally:
        await conn.close()
    assert tuple(row) == ("in_flight", None)


async def test_claims_in_flight_together_go_out_as_one_statement(
    pg_store: PostgresEventStore, database_url: str
) -> None:
    """Thirteen at once: new keys are taken, a finished key replays or refuses another body,
    and a key asked twice is taken once (the repeat goes in another batch, and one of the two
    finds the other in flight); the queued ones share one transaction."""
    done = uuid4().hex
    append = appending(1)
    results = await pg_store.append(
        append, completion=Completion(await claimed(pg_store, done), by_token)
    )
    keys = [uuid4().hex for _ in range(10)]
    asked = [(k, "h") for k in keys] + [(done, "h"), (done, "other"), (keys[5], "h")]
    outcomes = await asyncio.gather(
        *(pg_store.claim_idempotency("alice", key, body) for key, body in asked),
        return_exceptions=True,
    )
    assert all(isinstance(o, IdempotencyClaim) for n, o in enumerate(outcomes[:10]) if n != 5)
    assert outcomes[10] == by_token(results)
    assert isinstance(outcomes[11], IdempotencyConflict) and outcomes[11].reason == "body_mismatch"
    # The key asked twice: whichever statement reaches its record first takes it.
    twice = sorted((outcomes[5], outcomes[12]), key=lambda o: isinstance(o, IdempotencyClaim))
    assert isinstance(twice[0], IdempotencyConflict) and twice[0].reason == "in_flight"
    assert isinstance(twice[1], IdempotencyClaim)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        starts = await conn.fetchval(  # now() is the transaction's start: one per statement
            "SELECT count(DISTINCT created_at) FROM idempotency_records WHERE key = ANY($1)", keys
        )
    finally:
        await conn.close()
    assert starts < len(keys)


@pytest.mark.parametrize("together", [1, 12])
async def test_an_answer_vouched_for_by_token_is_rendered_once_and_stored_right(
    pg_store: PostgresEventStore, together: int
) -> None:
    """Alone or in a batch, the one rendering's stand-in gives way to the real token."""
    keys = [uuid4().hex for _ in range(together)]
    claims = [await claimed(pg_store, key) for key in keys]
    appends = [appending(1) for _ in keys]
    calls: list[int] = []

    def counted(results: list[AppendResult]) -> dict[str, object]:
        calls.append(1)
        return by_token(results)

    results = await asyncio.gather(
        *(
            pg_store.append(a, completion=Completion(c, counted, by_token=True))
            for a, c in zip(appends, claims, strict=True)
        )
    )
    assert len(calls) == together
    for key, result in zip(keys, results, strict=True):
        assert await pg_store.claim_idempotency("alice", key, "h") == by_token(result)
