"""PostgreSQL: appends queued behind others commit together, and each keeps its own answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from eventstore.postgres import PostgresEventStore
from eventstore.records import (
    AppendResult,
    DuplicateEvent,
    NewEvent,
    StreamAppend,
    WrongExpectedVersion,
)

pytestmark = pytest.mark.usefixtures("clean_db")


def one(
    expected: int = 0, stream_id: UUID | None = None, event_id: UUID | None = None
) -> StreamAppend:
    """An append of one event."""
    event = NewEvent("ThingHappened", {"n": 1}, datetime.now(UTC), event_id=event_id)
    return StreamAppend(stream_id or uuid4(), "Thing", expected, [event], {"actor": "t"})


async def test_queued_appends_share_a_commit_and_each_keeps_its_own_check(
    pg_store: PostgresEventStore,
) -> None:
    existing = [one() for _ in range(4)]
    for append in existing:
        await pg_store.append(append)
    fresh = [one() for _ in range(16)]
    # Stale: the streams are at version 1, not 5 (and no unique key would stop version 6).
    # Started last, they wait in the queue with the rest.
    stale = [one(5, stream_id=a.stream_id) for a in existing]
    outcomes = await asyncio.gather(
        *(pg_store.append(a) for a in [*fresh, *stale]), return_exceptions=True
    )
    done, refused = outcomes[: len(fresh)], outcomes[len(fresh) :]
    assert all(isinstance(r, WrongExpectedVersion) and r.actual == 1 for r in refused), refused
    assert all(isinstance(r, list) and r[0].version == 1 for r in done), done
    for append in existing:
        assert len(await pg_store.read_stream(append.stream_id)) == 1
    everything = {e.stream_id: e for e in await pg_store.read_all(limit=100)}
    assert len(everything) == len(existing) + len(fresh)
    for append, result in zip(fresh, done, strict=True):
        assert isinstance(result, list)
        assert everything[append.stream_id].position == result[0].position
    # Two went out alone at once; the others waited and went out in fewer commits than appends.
    commits = {result[0].position.transaction_id for result in done if isinstance(result, list)}
    assert len(commits) < len(fresh)


async def test_a_batch_that_breaks_a_unique_key_is_retried_one_append_at_a_time(
    pg_store: PostgresEventStore,
) -> None:
    shared = uuid4()  # two appends reuse an event id: the batch as a whole breaks its key
    queued = [one(), one(event_id=shared), one(), one(event_id=shared), one()]
    outcomes = await asyncio.gather(
        *(pg_store.append(a) for a in [one(), one(), *queued]), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], DuplicateEvent), outcomes
    assert isinstance(outcomes[3], list)  # the first with that id got in, the other alone failed
    assert len(await pg_store.read_all(limit=100)) == 6


async def test_several_streams_in_one_queued_append_stay_all_or_nothing(
    pg_store: PostgresEventStore,
) -> None:
    watched = one()
    await pg_store.append(watched)
    moved_on = StreamAppend(watched.stream_id, "Thing", 0, [])  # only checked, and stale
    together = (one(), one(expected=1, stream_id=watched.stream_id))
    refused = (one(), moved_on)
    outcomes: list[list[AppendResult] | BaseException] = await asyncio.gather(
        pg_store.append(one()),
        pg_store.append(one()),
        pg_store.append(*together),
        pg_store.append(*refused),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], WrongExpectedVersion)
    assert outcomes[3].stream_id == watched.stream_id
    assert await pg_store.read_stream(refused[0].stream_id) == []
    results = outcomes[2]
    assert isinstance(results, list) and [r.version for r in results] == [1, 2]
    assert results[0].position.transaction_id == results[1].position.transaction_id
