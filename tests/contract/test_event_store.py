"""One contract, two event stores: in-memory and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from eventstore.base import (
    AlreadyAnswered,
    Completion,
    EventStore,
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyKey,
    StoredResponse,
)
from eventstore.positions import Position
from eventstore.records import NewEvent, StoredEvent, StreamAppend, WrongExpectedVersion
from tests.contract.conftest import OpenStore


@pytest.fixture
def store(open_store: OpenStore, clean_db: None) -> EventStore:
    """Each store, empty."""
    return open_store()


def events(*names: str) -> list[NewEvent]:
    """New events with the given type names and a little data."""
    return [
        NewEvent(name, {"n": i, "text": "é ✓"}, datetime.now(UTC)) for i, name in enumerate(names)
    ]


def stream(expected: int = 0, *names: str, stream_id: object = None) -> StreamAppend:
    """A StreamAppend for a new or given stream."""
    sid = stream_id or uuid4()
    return StreamAppend(
        sid, "Thing", expected, events(*(names or ("ThingHappened",))), {"actor": "t"}
    )  # type: ignore[arg-type]


async def read_all_committed(store: EventStore, count: int) -> list[StoredEvent]:
    """read_all once it shows `count` events: other transactions on the PostgreSQL cluster (other
    test runs, say) may hold its watermark back for a moment, never past their own end."""
    for _ in range(500):
        if len(events := await store.read_all(limit=100)) >= count:
            return events
        await asyncio.sleep(0.02)
    return events


async def test_append_then_read_the_stream_back(store: EventStore) -> None:
    append = stream(0, "A", "B", "C")
    [result] = await store.append(append)
    assert result.version == 3
    read = await store.read_stream(append.stream_id)
    assert [(e.version, e.type, e.data["n"]) for e in read] == [
        (1, "A", 0),
        (2, "B", 1),
        (3, "C", 2),
    ]
    assert all(e.metadata == {"actor": "t"} and e.data["text"] == "é ✓" for e in read)
    assert read[-1].position == result.position
    assert [e.position for e in read] == sorted(e.position for e in read)
    assert Position.parse(read[0].token) == read[0].position


async def test_read_stream_from_a_version_with_a_limit(store: EventStore) -> None:
    append = stream(0, "A", "B", "C", "D")
    await store.append(append)
    page = await store.read_stream(append.stream_id, from_version=2, limit=2)
    assert [e.type for e in page] == ["B", "C"]
    assert await store.read_stream(uuid4()) == []


async def test_expected_version_conflict_appends_nothing(store: EventStore) -> None:
    first = stream(0, "A")
    await store.append(first)
    for wrong in (0, 2, 7):
        with pytest.raises(WrongExpectedVersion):
            await store.append(stream(wrong, "B", stream_id=first.stream_id))
    assert [e.type for e in await store.read_stream(first.stream_id)] == ["A"]
    await store.append(stream(1, "B", stream_id=first.stream_id))
    assert len(await store.read_stream(first.stream_id)) == 2


async def test_an_append_to_several_streams_is_all_or_nothing(store: EventStore) -> None:
    existing = stream(0, "A")
    await store.append(existing)
    fresh = stream(0, "X", "Y")
    stale = stream(0, "B", stream_id=existing.stream_id)
    with pytest.raises(WrongExpectedVersion):
        await store.append(fresh, stale)
    assert await store.read_stream(fresh.stream_id) == []
    results = await store.append(fresh, stream(1, "B", stream_id=existing.stream_id))
    assert [r.version for r in results] == [2, 2]
    assert results[0].position.transaction_id == results[1].position.transaction_id


async def test_a_stream_without_events_only_asserts_its_version(store: EventStore) -> None:
    watched = stream(0, "A")
    await store.append(watched)
    target = stream(0, "X")
    [result, _] = await store.append(target, StreamAppend(watched.stream_id, "Thing", 1, []))
    assert result.version == 1
    assert [e.type for e in await store.read_stream(watched.stream_id)] == ["A"]
    moved = stream(0, "Y")
    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(moved, StreamAppend(watched.stream_id, "Thing", 0, []))
    assert refused.value.stream_id == watched.stream_id
    assert await store.read_stream(moved.stream_id) == []


async def test_read_all_follows_by_token_in_pages(store: EventStore) -> None:
    for _ in range(5):
        await store.append(stream(0, "A", "B"))
    everything = await read_all_committed(store, 10)
    assert len(everything) == 10
    seen, after = [], None
    while page := await store.read_all(after, limit=3):
        seen.extend(page)
        after = Position.parse(page[-1].token)
    assert [e.event_id for e in seen] == [e.event_id for e in everything]
    assert await store.read_all(everything[4].position, limit=100) == everything[5:]


async def test_read_by_position_pages_up_to_a_token_in_position_order_and_upcasts(
    store: EventStore,
) -> None:
    for _ in range(4):
        await store.append(stream(0, "A", "B"))
    old = NewEvent("ProductRegistered", V1_PRODUCT, datetime.now(UTC), schema_version=1)
    await store.append(StreamAppend(uuid4(), "Product", 0, [old]))
    everything = await read_all_committed(store, 9)
    last = everything[-1].position
    seen: list[StoredEvent] = []
    after = 0
    while page := await store.read_by_position(last, after, limit=4):
        seen.extend(page)
        after = page[-1].position.position
    assert seen == sorted(everything, key=lambda e: e.position.position)
    assert seen[-1].data == {**V1_PRODUCT, "unit": "each"}  # upcast, like every read
    # Bounded by the token in commit order, and by `after` in position order.
    upto = everything[5].position
    assert await store.read_by_position(upto, limit=100) == everything[:6]
    assert await store.read_by_position(upto, everything[2].position.position) == everything[3:6]
    assert await store.read_by_position(last, last.position) == []


async def test_idempotency_claim_complete_replay(store: EventStore) -> None:
    claim = await store.claim_idempotency("alice", "key-1", "hash-1")
    assert isinstance(claim, IdempotencyClaim)
    with pytest.raises(IdempotencyConflict) as in_flight:
        await store.claim_idempotency("alice", "key-1", "hash-1")
    assert in_flight.value.reason == "in_flight"
    # Opaque to the store: any JSON object comes back as it was given.
    response: StoredResponse = {"answer": {"id": "x", "version": 1}, "tags": ['"1"', "é", None]}
    await store.complete_idempotency(claim, response)
    response["tags"].append("changed later")  # the store kept the value, not the caller's dict
    assert await store.claim_idempotency("alice", "key-1", "hash-1") == {
        "answer": {"id": "x", "version": 1},
        "tags": ['"1"', "é", None],
    }
    with pytest.raises(IdempotencyConflict) as mismatch:
        await store.claim_idempotency("alice", "key-1", "hash-2")
    assert mismatch.value.reason == "body_mismatch"
    assert isinstance(await store.claim_idempotency("bob", "key-1", "hash-2"), IdempotencyClaim)


async def test_a_released_claim_can_be_taken_again(store: EventStore) -> None:
    claim = await store.claim_idempotency("alice", "key-2", "h")
    assert isinstance(claim, IdempotencyClaim)
    await store.release_idempotency(claim)
    assert isinstance(await store.claim_idempotency("alice", "key-2", "h"), IdempotencyClaim)


async def test_completion_commits_with_the_append_or_not_at_all(store: EventStore) -> None:
    claim = await store.claim_idempotency("alice", "key-3", "h")
    assert isinstance(claim, IdempotencyClaim)
    respond: Callable[..., StoredResponse] = lambda results: {  # noqa: E731
        "version": results[0].version
    }
    existing = stream(0, "A")
    await store.append(existing)
    with pytest.raises(WrongExpectedVersion):
        await store.append(
            stream(0, "B", stream_id=existing.stream_id), completion=Completion(claim, respond)
        )
    with pytest.raises(IdempotencyConflict):  # still in flight: the failed append stored nothing
        await store.claim_idempotency("alice", "key-3", "h")
    await store.append(
        stream(1, "B", stream_id=existing.stream_id), completion=Completion(claim, respond)
    )
    assert await store.claim_idempotency("alice", "key-3", "h") == {"version": 2}


@pytest.mark.parametrize("names", [("A",), ("A", "B")])
async def test_an_append_takes_its_key_or_appends_nothing(
    store: EventStore, names: tuple[str, ...]
) -> None:
    """A key given unclaimed: free, the append takes it and stores its answer; answered, in
    flight or used with another body, nothing is appended; a refused append leaves it free."""
    respond: Callable[..., StoredResponse] = lambda results: {  # noqa: E731
        "version": results[0].version,
        "position": results[0].position.token,
    }
    key = IdempotencyKey("alice", f"key-{len(names)}", "h")
    existing = stream(0, "A")
    await store.append(existing)
    with pytest.raises(WrongExpectedVersion):  # refused: the key stays free
        await store.append(
            stream(0, *names, stream_id=existing.stream_id), completion=Completion(key, respond)
        )
    results = await store.append(
        stream(1, *names, stream_id=existing.stream_id), completion=Completion(key, respond)
    )
    assert results[0].version == 1 + len(names)
    again = stream(0, *names)
    with pytest.raises(AlreadyAnswered) as answered:
        await store.append(again, completion=Completion(key, respond))
    assert answered.value.response == respond(results)
    other = IdempotencyKey("alice", key.key, "other body")
    with pytest.raises(IdempotencyConflict) as mismatch:
        await store.append(again, completion=Completion(other, respond))
    assert mismatch.value.reason == "body_mismatch"
    held = await store.claim_idempotency("alice", "held", "h")
    assert isinstance(held, IdempotencyClaim)
    with pytest.raises(IdempotencyConflict) as in_flight:
        await store.append(
            again, completion=Completion(IdempotencyKey("alice", "held", "h"), respond)
        )
    assert in_flight.value.reason == "in_flight"
    assert await store.read_stream(again.stream_id) == []
    assert await store.claim_idempotency("alice", key.key, "h") == respond(results)


V1_PRODUCT = {"sku": "OLD-1", "name": "Mug", "description": "", "price": "9.50", "category": "k"}


async def test_every_read_upcasts_old_schema_versions_and_passes_the_rest_through(
    store: EventStore,
) -> None:
    now = datetime.now(UTC)
    old = NewEvent("ProductRegistered", V1_PRODUCT, now, schema_version=1)
    future = NewEvent("ProductRenamed", {"name": "x", "new": 1}, now, schema_version=9)
    append = StreamAppend(uuid4(), "Product", 0, [old, future])
    await store.append(append)

    by_stream = await store.read_stream(append.stream_id)
    in_order = await read_all_committed(store, 2)
    for read in (by_stream, in_order):
        assert (read[0].schema_version, read[0].data) == (2, {**V1_PRODUCT, "unit": "each"})
        # A version newer than this code is left as stored, saying so; decode refuses it.
        assert (read[1].schema_version, read[1].data) == (9, {"name": "x", "new": 1})
    again = await store.read_stream(append.stream_id)
    assert again[0].data["unit"] == "each"  # stored events are never rewritten, each read upcasts


async def test_expired_idempotency_records_are_purged_a_bounded_batch_at_a_time(
    expiring_store: EventStore,
) -> None:
    store = expiring_store
    for n in range(5):
        claim = await store.claim_idempotency("purge", f"done-{n}", "h")
        assert isinstance(claim, IdempotencyClaim)
        await store.complete_idempotency(claim, {"n": n})
    in_flight = await store.claim_idempotency("purge", "in-flight", "h")
    assert isinstance(in_flight, IdempotencyClaim)
    await asyncio.sleep(0.01)  # every record is past its (zero) time to live

    # Five, never more than two at a time; the record in flight stays, its lock still running
    # (completing raises ClaimLost for a record that is gone).
    assert [await store.purge_idempotency(2) for _ in range(4)] == [2, 2, 1, 0]
    await store.complete_idempotency(in_flight, {"late": True})
    # A purged key is new again: another body may take it.
    assert isinstance(await store.claim_idempotency("purge", "done-0", "other"), IdempotencyClaim)
