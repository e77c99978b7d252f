"""PostgreSQL: readers following by token never skip a late commit, under real concurrency."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventstore.base import Completion, IdempotencyClaim, StoredResponse
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StoredEvent, StreamAppend

pytestmark = pytest.mark.usefixtures("clean_db")

WRITERS, APPENDS_PER_WRITER, STREAMS_PER_WRITER = 8, 300, 6


@dataclass(frozen=True)
class Committed:
    """One successful append, with the wall-clock window it ran in."""

    started: float
    finished: float
    event_ids: tuple[UUID, ...]


class RollBack(Exception):
    """Raised inside an append's transaction to roll it back after its insert."""


def new_events(count: int) -> list[NewEvent]:
    """`count` events with ids we know."""
    return [NewEvent("Tick", {"i": i}, datetime.now(UTC), event_id=uuid4()) for i in range(count)]


def refuse(_: object) -> StoredResponse:
    """A completion that fails after the insert, rolling the whole append back."""
    raise RollBack


async def writer(store: PostgresEventStore, seed: int) -> list[Committed]:
    """Append to a few streams of its own; every tenth append is rolled back after inserting."""
    rng, versions = random.Random(seed), {uuid4(): 0 for _ in range(STREAMS_PER_WRITER)}
    done: list[Committed] = []
    for n in range(APPENDS_PER_WRITER):
        stream_id = rng.choice(list(versions))
        batch = new_events(rng.randint(1, 4))
        append = StreamAppend(stream_id, "Ticker", versions[stream_id], batch)
        started = time.monotonic()
        if n % 10 == 9:
            claim = IdempotencyClaim("w", f"{seed}-{n}", uuid4())
            with pytest.raises(RollBack):
                await store.append(append, completion=Completion(claim, refuse))
            continue
        await store.append(append)
        done.append(Committed(started, time.monotonic(), tuple(e.event_id for e in batch)))  # type: ignore[misc]
        versions[stream_id] += len(batch)
    return done


async def follow(store: PostgresEventStore, total: list[int], seen: list[StoredEvent]) -> None:
    """Read everything after the last token, in pages, until `total[0]` events were seen.

    An empty page is not the end: another transaction on the cluster may hold the watermark.
    """
    after: Position | None = None
    while len(seen) < total[0]:
        page = await store.read_all(after, limit=300)
        seen.extend(page)
        if page:
            after = page[-1].position
        else:
            await asyncio.sleep(0.002)


async def eventually(
    store: PostgresEventStore, count: int, seconds: float = 10
) -> list[StoredEvent]:
    """All events, once `count` are readable (a stall would fail here after `seconds`)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while len(found := await store.read_all(limit=10_000)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(found)} of {count} readable"
        await asyncio.sleep(0.01)
    return found


async def test_concurrent_writers_and_a_following_reader(pg_store: PostgresEventStore) -> None:
    seen: list[StoredEvent] = []
    total = [10**9]
    reader = asyncio.create_task(follow(pg_store, total, seen))
    results = await asyncio.gather(*(writer(pg_store, seed) for seed in range(WRITERS)))
    seen_while_writing = len(seen)
    committed = [c for per_writer in results for c in per_writer]
    expected = {event_id for c in committed for event_id in c.event_ids}
    total[0] = len(expected)
    await asyncio.wait_for(reader, 30)
    await asyncio.sleep(0.2)
    seen.extend(await pg_store.read_all(seen[-1].position, limit=10_000))  # nothing more to come
    order = {e.event_id: index for index, e in enumerate(seen)}
    assert len(expected) >= 5000
    assert len(seen) == len(order) == len(expected)  # every event, exactly once
    assert set(order) == expected  # and nothing rolled back
    assert seen_while_writing > 0  # the reader really followed along, not read at the end

    for previous, event in itertools.pairwise(seen):  # the order is the token order
        assert previous.position < event.position
    last_version: dict[UUID, int] = {}
    for event in seen:
        assert event.version == last_version.get(event.stream_id, 0) + 1
        last_version[event.stream_id] = event.version
    assert_consistent_with_commit_order(committed, order)


def assert_consistent_with_commit_order(committed: list[Committed], order: dict[UUID, int]) -> None:
    """If append X finished before append Y started, all of X precedes all of Y."""
    by_finish = sorted(committed, key=lambda c: c.finished)
    finishes = [c.finished for c in by_finish]
    prefix_max, running = [], -1
    for c in by_finish:
        running = max(running, *(order[e] for e in c.event_ids))
        prefix_max.append(running)
    for c in committed:
        earlier = bisect.bisect_left(finishes, c.started)
        if earlier:
            assert prefix_max[earlier - 1] < min(order[e] for e in c.event_ids)


async def insert_raw(conn: AsyncConnection, stream_id: UUID, version: int = 1) -> None:
    """Insert one event inside a transaction the test controls."""
    await conn.execute(
        sa.text(
            "INSERT INTO events (event_id, stream_id, stream_type, version, type, data, "
            "recorded_at) VALUES (:eid, :sid, 'Ticker', :v, 'Tick', CAST(:data AS jsonb), now())"
        ),
        {"eid": uuid4(), "sid": stream_id, "v": version, "data": json.dumps({"slow": True})},
    )


async def test_a_late_commit_with_a_smaller_position_is_not_skipped(
    engine: AsyncEngine, pg_store: PostgresEventStore
) -> None:
    slow_stream, fast = uuid4(), StreamAppend(uuid4(), "Ticker", 0, new_events(1))
    async with engine.connect() as slow:
        await slow.begin()
        await insert_raw(slow, slow_stream)  # takes the smaller position, commits last
        await pg_store.append(fast)
        async with engine.connect() as naive:  # what a position-only reader would see now
            naive_rows = (await naive.execute(sa.text("SELECT stream_id FROM events"))).all()
        assert [r.stream_id for r in naive_rows] == [fast.stream_id]
        assert await pg_store.read_all() == []  # held back by the watermark: lag, not a skip
        await slow.commit()
    seen = await eventually(pg_store, 2)
    assert [e.stream_id for e in seen] == [slow_stream, fast.stream_id]
    assert seen[0].position.position < seen[1].position.position


async def test_read_by_position_keeps_to_commit_order_up_to_the_token(
    engine: AsyncEngine, pg_store: PostgresEventStore
) -> None:
    """Position order and commit order disagree here; the bound is by commit order."""
    early_stream, fast = uuid4(), StreamAppend(uuid4(), "Ticker", 0, new_events(1))
    async with engine.connect() as early:
        await early.begin()
        await early.execute(sa.text("SELECT pg_current_xact_id()"))  # the smaller xid
        await pg_store.append(fast)  # the smaller position, the larger xid
        await insert_raw(early, early_stream)
        await early.commit()
    early_commit, fast_event = await eventually(pg_store, 2)  # in commit order
    assert early_commit.stream_id == early_stream
    assert fast_event.position.position < early_commit.position.position

    assert await pg_store.read_by_position(early_commit.position) == [early_commit]
    both = await pg_store.read_by_position(fast_event.position)
    assert [e.stream_id for e in both] == [fast.stream_id, early_stream]  # position order


async def test_a_rolled_back_transaction_leaves_no_stall(
    engine: AsyncEngine, pg_store: PostgresEventStore
) -> None:
    fast = StreamAppend(uuid4(), "Ticker", 0, new_events(2))
    async with engine.connect() as slow:
        await slow.begin()
        await insert_raw(slow, uuid4())
        await pg_store.append(fast)
        assert await pg_store.read_all() == []
        await slow.rollback()
    assert [e.stream_id for e in await eventually(pg_store, 2)] == [fast.stream_id] * 2


async def test_a_long_transaction_without_events_only_delays_readers(
    engine: AsyncEngine, pg_store: PostgresEventStore
) -> None:
    async with engine.connect() as long_running:
        await long_running.begin()
        await long_running.execute(sa.text("SELECT pg_current_xact_id()"))  # holds an xid
        await pg_store.append(StreamAppend(uuid4(), "Ticker", 0, new_events(3)))
        assert await pg_store.read_all() == []
        await long_running.commit()
    assert len(await eventually(pg_store, 3)) == 3


async def test_batch_append_across_many_streams_keeps_every_guarantee(
    pg_store: PostgresEventStore,
) -> None:
    appends = [StreamAppend(uuid4(), "Ticker", 0, new_events(5)) for _ in range(400)]
    results = await pg_store.append(*appends)
    assert [r.version for r in results] == [5] * 400
    assert len({r.position.transaction_id for r in results}) == 1
    seen = await pg_store.read_all(limit=5000)
    assert [e.stream_id for e in seen] == [a.stream_id for a in appends for _ in range(5)]
    assert [e.version for e in seen[:5]] == [1, 2, 3, 4, 5]


async def test_events_are_append_only(engine: AsyncEngine, pg_store: PostgresEventStore) -> None:
    await pg_store.append(StreamAppend(uuid4(), "Ticker", 0, new_events(1)))
    for statement in ("UPDATE events SET type = 'Forged'", "DELETE FROM events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text(statement))
    assert [e.type for e in await pg_store.read_all()] == ["Tick"]
