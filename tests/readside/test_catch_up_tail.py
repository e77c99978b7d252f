"""Catch-up at the head of the log: fresh reads after each write, shared reads, no empty writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StoredEvent, StoreUnavailable, StreamAppend
from projections.checkpoints import Checkpoints, ParkedEvents
from workers.runner import CatchUp
from workers.shared_reads import SharedReads

Db = AsyncDatabase[dict[str, Any]]


async def append(store: PostgresEventStore, *types: str) -> str:
    """One new stream with events of `types`; the last one's token."""
    events = [NewEvent(name, {"n": i}, datetime.now(UTC)) for i, name in enumerate(types)]
    await store.append(StreamAppend(uuid4(), "Thing", 0, events, {"actor": "test"}))
    # Past any counting or failing override: this read is the test's, not the subject's.
    return (await PostgresEventStore.read_all(store, None, 10_000))[-1].token


class Recorder:
    """A subscriber that remembers what it was given; on its first batch it can append more."""

    name = "recorder"

    def __init__(self, handles: set[str], store: PostgresEventStore | None = None) -> None:
        self.handles = frozenset(handles)
        self.batches: list[list[str]] = []
        self.store = store

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Record the batch's types; the first time, commit another event meanwhile."""
        self.batches.append([e.type for e in events])
        if self.store is not None:
            store, self.store = self.store, None
            await asyncio.sleep(0.2)  # any read issued before this batch's write is done by now
            await append(store, "Later")


class CountingStore(PostgresEventStore):
    """The real store, counting the log reads made through it."""

    reads = 0

    async def read_all(self, after: Position | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Count, then read."""
        self.reads += 1
        return await super().read_all(after, limit)


def runner(store: PostgresEventStore, db: Db, shared: SharedReads | None = None) -> CatchUp:
    """A catch-up runner with a small page, over the test databases."""
    return CatchUp(store, Checkpoints(db), ParkedEvents(db), batch_size=50, shared=shared)


async def test_events_committed_while_a_batch_is_written_are_applied_in_the_same_run(
    pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    await append(pg_store, "First")
    subscriber = Recorder({"First", "Later"}, store=pg_store)
    catch_up = runner(pg_store, mongo_db)

    assert await catch_up.run(subscriber) == 2
    # The page after a partial one is read once the batch is written, not before: reading it
    # beforehand would have missed "Later" until the next wake-up.
    assert subscriber.batches == [["First"], ["Later"]]
    saved = await mongo_db["checkpoints"].find_one({"_id": "recorder"})
    assert saved is not None and saved["token"] == (await pg_store.read_all())[-1].token


async def test_a_batch_with_nothing_for_a_subscriber_is_not_applied_but_still_checkpointed(
    pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    last = await append(pg_store, "Other", "Other")
    subscriber = Recorder({"Wanted"})

    assert await runner(pg_store, mongo_db).run(subscriber) == 2
    assert subscriber.batches == []
    saved = await mongo_db["checkpoints"].find_one({"_id": "recorder"})
    assert saved is not None and saved["token"] == last


async def test_subscribers_woken_by_one_signal_share_one_read(
    engine: Any, mongo_db: Db, clean_db: None
) -> None:
    store = CountingStore(engine)
    await append(store, "A", "B")
    shared = SharedReads(store)
    shared.signal()
    catch_up = runner(store, mongo_db, shared)
    subscribers = [Recorder({"A", "B"}) for _ in range(4)]
    for i, subscriber in enumerate(subscribers):
        subscriber.name = f"recorder-{i}"
    store.reads = 0

    results = await asyncio.gather(
        *(catch_up.advance(s, None, since=shared.signals) for s in subscribers)
    )

    assert [total for _, total in results] == [2, 2, 2, 2]
    assert all(s.batches == [["A", "B"]] for s in subscribers)
    # One read of the page, one of what follows it: not two per subscriber.
    assert store.reads == 2


async def test_a_read_older_than_the_latest_signal_is_not_reused(
    engine: Any, mongo_db: Db, clean_db: None
) -> None:
    store = CountingStore(engine)
    shared = SharedReads(store)
    shared.signal()
    first = await shared.read_all(None, 50, since=shared.signals)
    assert first == []

    await append(store, "A")  # committed, then announced
    shared.signal()
    again = await shared.read_all(None, 50, since=shared.signals)

    assert [e.type for e in again] == ["A"]
    assert store.reads == 2
    # Asked with what was known before that signal, the earlier answer may be shared.
    assert await shared.read_all(None, 50, since=shared.signals - 1) == again
    assert store.reads == 2


class FlakyStore(CountingStore):
    """The real store, whose first log read fails as a lost connection would."""

    async def read_all(self, after: Position | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Fail the first time, then read."""
        if self.reads == 0:
            self.reads += 1
            raise StoreUnavailable("connection lost")
        return await super().read_all(after, limit)


async def test_a_failed_read_is_not_shared_afterwards(
    engine: Any, pg_store: PostgresEventStore, clean_db: None
) -> None:
    await append(pg_store, "A")
    store = FlakyStore(engine)
    shared = SharedReads(store)

    with pytest.raises(StoreUnavailable):
        await shared.read_all(None, 50, since=0)
    # Same page, same signal: the failure is not handed to the next caller.
    assert [e.type for e in await shared.read_all(None, 50, since=0)] == ["A"]
    assert store.reads == 2
