"""Keyed appends on PostgreSQL: the key taken by the append's own statement with its answer (one
event) or claimed first and answered in the append's transaction (more), a claim held already,
and every edge between a key and its append: answered, in flight, abandoned, expired, raced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from eventstore.base import (
    AlreadyAnswered,
    ClaimLost,
    Completion,
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyKey,
)
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


def key_of(key: str, body: str = "h") -> IdempotencyKey:
    """Alice's `key`, for a request whose fingerprint is `body`."""
    return IdempotencyKey("alice", key, body)


async def record(database_url: str, key: str) -> tuple[str, object] | None:
    """The status and stored answer of Alice's `key`, or None if it has no record."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT status, response FROM idempotency_records WHERE actor = 'alice' AND key = $1",
            key,
        )
    finally:
        await conn.close()
    return None if row is None else (row["status"], row["response"])


@pytest.mark.parametrize("held", [False, True])
@pytest.mark.parametrize("respond", [by_token, by_number])
@pytest.mark.parametrize("count", [1, 2])
async def test_the_stored_answer_is_the_one_the_append_got(
    pg_store: PostgresEventStore, count: int, respond: Respond, held: bool
) -> None:
    """Whether the append takes the key or a claim is held already."""
    key = uuid4().hex
    claim: IdempotencyClaim | IdempotencyKey = key_of(key)
    if held:
        claim = await claimed(pg_store, key)
    append = appending(count)
    results = await pg_store.append(append, completion=Completion(claim, respond))
    stored = await pg_store.read_stream(append.stream_id)
    assert results[0].position == stored[-1].position  # the real position, not a stand-in
    assert [r.version for r in results] == [count]
    assert await pg_store.claim_idempotency("alice", key, "h") == respond(results)


@pytest.mark.parametrize("count", [1, 2])
async def test_a_key_answered_already_appends_nothing_and_gives_its_answer(
    pg_store: PostgresEventStore, count: int
) -> None:
    key = uuid4().hex
    first = await pg_store.append(appending(1), completion=Completion(key_of(key), by_token))
    again = appending(count)
    with pytest.raises(AlreadyAnswered) as answered:
        await pg_store.append(again, completion=Completion(key_of(key), by_token))
    assert answered.value.response == by_token(first)
    with pytest.raises(IdempotencyConflict) as conflict:
        await pg_store.append(again, completion=Completion(key_of(key, "other"), by_token))
    assert conflict.value.reason == "body_mismatch"
    assert await pg_store.read_stream(again.stream_id) == []


@pytest.mark.parametrize("count", [1, 2])
async def test_a_key_in_flight_appends_nothing(
    pg_store: PostgresEventStore, database_url: str, count: int
) -> None:
    key = uuid4().hex
    await claimed(pg_store, key)  # another request holds it, its lock alive
    append = appending(count)
    with pytest.raises(IdempotencyConflict) as conflict:
        await pg_store.append(append, completion=Completion(key_of(key), by_token))
    assert conflict.value.reason == "in_flight"
    assert await pg_store.read_stream(append.stream_id) == []
    assert await record(database_url, key) == ("in_flight", None)


@pytest.mark.parametrize("count", [1, 2])
async def test_an_abandoned_or_expired_key_is_taken_by_the_append(
    expiring: PostgresEventStore, database_url: str, count: int
) -> None:
    """Abandoned: in flight, its lock run out, same body. Expired: answered, past its lifetime."""
    abandoned, expired = uuid4().hex, uuid4().hex
    await claimed(expiring, abandoned)
    await expiring.append(appending(1), completion=Completion(key_of(expired), by_token))
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE idempotency_records SET expires_at = now() - interval '1 second' "
            "WHERE key = $1",
            expired,
        )
    finally:
        await conn.close()
    for key in (abandoned, expired):
        append = appending(count)
        results = await expiring.append(append, completion=Completion(key_of(key), by_token))
        assert len(await expiring.read_stream(append.stream_id)) == count
        assert await expiring.claim_idempotency("alice", key, "h") == by_token(results)


async def test_the_same_key_raced_from_many_requests_appends_once(
    pg_store: PostgresEventStore,
) -> None:
    """Six keys, each sent by three requests at once, alone and in batches: one append each
    takes its key, the others append nothing and get its answer."""
    keys = [uuid4().hex for _ in range(6)]
    sent = [(key, appending(1)) for _ in range(3) for key in keys]
    outcomes = await asyncio.gather(
        *(pg_store.append(a, completion=Completion(key_of(k), by_token)) for k, a in sent),
        return_exceptions=True,
    )
    for key in keys:
        mine = [(a, o) for (k, a), o in zip(sent, outcomes, strict=True) if k == key]
        won = [(a, o) for a, o in mine if isinstance(o, list)]
        assert len(won) == 1, mine
        winner, results = won[0]
        assert isinstance(results, list)
        for append, outcome in mine:
            if append is winner:
                assert len(await pg_store.read_stream(append.stream_id)) == 1
                continue
            assert isinstance(outcome, AlreadyAnswered), outcome
            assert outcome.response == by_token(results)
            assert await pg_store.read_stream(append.stream_id) == []


@pytest.mark.parametrize("commit", [True, False])
async def test_a_key_written_by_a_running_transaction_is_judged_once_it_ends(
    pg_store: PostgresEventStore, database_url: str, commit: bool
) -> None:
    """The append waits for the other transaction's record: committed, it is the answer;
    rolled back, the key is free and the append takes it."""
    key = uuid4().hex
    other = await asyncpg.connect(asyncpg_dsn(database_url))
    append = appending(1)
    try:
        await other.execute("BEGIN")
        await other.execute(
            "INSERT INTO idempotency_records (actor, key, request_hash, status, lock_token, "
            "expires_at, response) VALUES ('alice', $1, 'h', 'done', gen_random_uuid(), "
            "now() + interval '1 day', '{\"version\": 7}')",
            key,
        )
        appended = asyncio.ensure_future(
            pg_store.append(append, completion=Completion(key_of(key), by_token))
        )
        await asyncio.sleep(0.3)  # the append now waits for the uncommitted record
        assert not appended.done()
        await other.execute("COMMIT" if commit else "ROLLBACK")
        if commit:
            with pytest.raises(AlreadyAnswered) as answered:
                await appended
            assert answered.value.response == {"version": 7}
        else:
            results = await appended
    finally:
        await other.close()
    stored = await pg_store.read_stream(append.stream_id)
    assert len(stored) == (0 if commit else 1)
    if not commit:
        assert await pg_store.claim_idempotency("alice", key, "h") == by_token(results)


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


@pytest.mark.parametrize("held", [True, False])
@pytest.mark.parametrize("reply_lost", [True, False])
async def test_a_transaction_cut_at_its_commit_is_outcome_unknown(
    proxied: tuple[PostgresEventStore, CuttingProxy],
    pg_store: PostgresEventStore,
    reply_lost: bool,
    held: bool,
) -> None:
    """Committed, the answer is stored; not, a claim held stays in flight, and one the
    append took for itself is released, so the key is free for the client's retry."""
    store, proxy = proxied
    key, append = uuid4().hex, appending(2)
    claim: IdempotencyClaim | IdempotencyKey = key_of(key)
    if held:
        claim = await claimed(store, key)
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
    elif held:  # nothing committed: the claim is still in flight
        with pytest.raises(IdempotencyConflict):
            await again
    else:
        assert isinstance(await again, IdempotencyClaim)


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
    appends = [appending(1) for _ in keys]
    results = await asyncio.gather(
        *(
            pg_store.append(a, completion=Completion(key_of(k), by_token))
            for a, k in zip(appends, keys, strict=True)
        )
    )
    transactions = {r[0].position.transaction_id for r in results}
    assert len(transactions) < len(keys)  # some went out together
    for key, append, result in zip(keys, appends, results, strict=True):
        stored = await pg_store.read_stream(append.stream_id)
        assert [e.position for e in stored] == [result[0].position]
        assert await pg_store.claim_idempotency("alice", key, "h") == by_token(result)


async def test_a_batch_refuses_only_the_keyed_appends_it_must(
    pg_store: PostgresEventStore, database_url: str
) -> None:
    """Keyed and keyless appends in one batch: the one whose key is answered already raises
    AlreadyAnswered and appends nothing; one whose check fails leaves its key untouched; the
    rest commit, the keyed ones with their answers."""
    answered_key, stale_key, new_key = uuid4().hex, uuid4().hex, uuid4().hex
    first = await pg_store.append(
        appending(1), completion=Completion(key_of(answered_key), by_token)
    )
    keyless = [appending(1) for _ in range(6)]
    again, stale_append, new_append = appending(1), appending(1), appending(1)
    stale_append = StreamAppend(stale_append.stream_id, "Ticker", 4, stale_append.events)
    outcomes = await asyncio.gather(
        *(pg_store.append(a) for a in keyless[:3]),
        pg_store.append(again, completion=Completion(key_of(answered_key), by_token)),
        pg_store.append(stale_append, completion=Completion(key_of(stale_key), by_token)),
        pg_store.append(new_append, completion=Completion(key_of(new_key), by_token)),
        *(pg_store.append(a) for a in keyless[3:]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], AlreadyAnswered)
    assert outcomes[3].response == by_token(first)
    assert isinstance(outcomes[4], WrongExpectedVersion)
    assert all(isinstance(o, list) for o in outcomes[:3] + outcomes[5:])
    assert await pg_store.read_stream(again.stream_id) == []
    assert await pg_store.read_stream(stale_append.stream_id) == []
    for append in [*keyless, new_append]:
        assert len(await pg_store.read_stream(append.stream_id)) == 1
    together = {outcomes[n][0].position.transaction_id for n in (2, 5, 6)}  # type: ignore[index]
    assert len(together) == 1  # the queued ones, the keyed among them, went out as one batch
    assert await record(database_url, stale_key) is None
    assert await pg_store.claim_idempotency("alice", new_key, "h") == by_token(outcomes[5])  # type: ignore[arg-type]


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
    appends = [appending(1) for _ in keys]
    calls: list[int] = []

    def counted(results: list[AppendResult]) -> dict[str, object]:
        calls.append(1)
        return by_token(results)

    results = await asyncio.gather(
        *(
            pg_store.append(a, completion=Completion(key_of(k), counted, by_token=True))
            for a, k in zip(appends, keys, strict=True)
        )
    )
    assert len(calls) == together
    for key, result in zip(keys, results, strict=True):
        assert await pg_store.claim_idempotency("alice", key, "h") == by_token(result)
