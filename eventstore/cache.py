"""The aggregates a process last saved or read, kept for its next command on the same stream."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from eventstore.positions import Position

A = TypeVar("A", bound=Aggregate)


@dataclass
class Loaded(Generic[A]):
    """An aggregate and the position of its newest event."""

    aggregate: A
    position: Position


class AggregateCache:
    """An LRU of loaded aggregates, and one of the streams seen to exist, `size` each."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._loaded: OrderedDict[UUID, Loaded[Any]] = OrderedDict()
        self._existing: OrderedDict[UUID, None] = OrderedDict()

    def take(self, cls: type[A], stream_id: UUID) -> Loaded[A] | None:
        """The cached aggregate, taken out of the cache while a command uses it."""
        # decide() mutates it, and a failed attempt must not leave a half-changed aggregate
        # behind for the next command.
        return _of_type(cls, self._loaded.pop(stream_id, None))

    def peek(self, cls: type[A], stream_id: UUID) -> Loaded[A] | None:
        """The cached aggregate, left in the cache, or None."""
        return _of_type(cls, self._loaded.get(stream_id))

    def holds(self, stream_id: UUID) -> bool:
        """Whether an aggregate of the stream is cached."""
        return stream_id in self._loaded

    def keep(self, stream_id: UUID, loaded: Loaded[Any]) -> None:
        """Cache `loaded` as the stream's newest state."""
        self._remember(self._loaded, stream_id, loaded)

    def known_to_exist(self, stream_id: UUID) -> bool:
        """Whether the stream was seen to exist (streams are never deleted)."""
        return stream_id in self._existing

    def mark_existing(self, stream_id: UUID) -> None:
        """Remember that the stream exists."""
        self._remember(self._existing, stream_id, None)

    def _remember(self, cache: OrderedDict[UUID, Any], key: UUID, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.size:
            cache.popitem(last=False)


def _of_type(cls: type[A], loaded: Loaded[Any] | None) -> Loaded[A] | None:
    """`loaded` if it holds a `cls` (a stream id of another type is not that aggregate)."""
    return loaded if loaded is not None and isinstance(loaded.aggregate, cls) else None
