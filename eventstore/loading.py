"""Aggregates out of their streams: from the start, from a cached state, or from a snapshot."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.registry import stream_type_of
from eventstore.base import EventStore
from eventstore.cache import Loaded
from eventstore.records import StoredEvent
from eventstore.serialization import EventCodec
from eventstore.snapshots import SnapshotWriter, restore

A = TypeVar("A", bound=Aggregate)


class StreamTypeMismatch(Exception):
    """The stream exists but holds another kind of aggregate."""


class StreamLoader:
    """Folds a stream's events into its aggregate, starting from the best state at hand.

    With `snapshots`, a cold load reads the latest snapshot and the events after it in one round
    trip, so its cost is bounded by the interval, not by the stream's length; and one that had
    to fold at least an interval's worth of events (no snapshot yet, or one of other code)
    offers a snapshot, so the next cold load does not.
    """

    def __init__(
        self, store: EventStore, codec: EventCodec, snapshots: SnapshotWriter | None
    ) -> None:
        self.store, self.codec, self.snapshots = store, codec, snapshots

    async def load(
        self, cls: type[A], stream_id: UUID, base: Loaded[A] | None = None
    ) -> Loaded[A] | None:
        """The aggregate rebuilt from its stream, or `base` with the events after it applied."""
        if base is None and self.snapshots is not None:
            return await self._cold(cls, stream_id, self.snapshots)
        events = await self.store.read_stream(stream_id, base.aggregate.version + 1 if base else 1)
        return self._fold(cls, stream_id, base, events)

    async def _cold(
        self, cls: type[A], stream_id: UUID, writer: SnapshotWriter
    ) -> Loaded[A] | None:
        """The aggregate from its latest snapshot and the events after it."""
        record, events = await writer.store.load_latest(stream_id)
        base: Loaded[A] | None = None
        if record is not None:
            if record.stream_type != stream_type_of(cls):
                raise StreamTypeMismatch(f"{cls.__name__} {stream_id} not found")
            restored = restore(cls, record)
            if restored is None:  # taken of other code: the whole stream, and a new snapshot
                events = await self.store.read_stream(stream_id, 1)
            else:
                base = Loaded(restored, record.position)  # type: ignore[arg-type]
        loaded = self._fold(cls, stream_id, base, events)
        if loaded is not None and 0 < writer.interval <= len(events):
            writer.offer(loaded.aggregate, loaded.position)
        return loaded

    def _fold(
        self, cls: type[A], stream_id: UUID, base: Loaded[A] | None, events: list[StoredEvent]
    ) -> Loaded[A] | None:
        """`base` (None: nothing) with `events` applied."""
        if not events:
            return base
        if base is None and events[0].stream_type != stream_type_of(cls):
            raise StreamTypeMismatch(f"{cls.__name__} {stream_id} not found")
        aggregate: Any = base.aggregate if base else None
        for stored in events:
            aggregate = self.codec.decode(stored).mutate(aggregate)
        return Loaded(aggregate, events[-1].position)
