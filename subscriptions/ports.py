"""The ports subscribers and their operations (rebuild, replay, audit, status) work through.

Built once per process by its composition root; nothing below it opens a connection itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase

from eventstore.base import EventStore
from eventstore.positions import Position

if TYPE_CHECKING:
    from eventstore.inspect import Behind, Head

Document = dict[str, Any]


class StoreInspector(Protocol):
    """What the event store says about itself: head, lag, what holds readers back, what exists."""

    async def head(self) -> Head:
        """The newest committed event and the watermark."""
        ...

    async def behind(self, checkpoint: Position | None) -> Behind:
        """Committed events after `checkpoint`."""
        ...

    async def watermark_holders(self) -> list[dict[str, Any]]:
        """The oldest open transactions holding the watermark back."""
        ...

    def stream_ids(
        self, stream_type: str, types: Iterable[str], upto: Position, page: int
    ) -> AsyncIterator[list[UUID]]:
        """Pages of the streams of `stream_type` with an event of `types` by `upto`."""
        ...

    async def known_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        """Those of `ids` that have events."""
        ...

    async def known_positions(self, positions: Iterable[int]) -> set[int]:
        """Those of `positions` that hold an event."""
        ...


class Lease(Protocol):
    """Exclusive ownership of one subscriber (or one operation) across every process."""

    name: str

    @property
    def held(self) -> bool:
        """Whether this process believes it owns it."""
        ...

    async def try_acquire(self) -> bool:
        """Take it if free; never waits."""
        ...

    async def acquire(self, wait: float | None = None, interval: float = 0.05) -> bool:
        """Take it, waiting up to `wait` seconds."""
        ...

    async def confirm(self) -> bool:
        """Whether it is still held."""
        ...

    async def release(self) -> None:
        """Give it up."""
        ...


class Leases(Protocol):
    """Makes leases and says who holds them."""

    def lease(self, name: str) -> Lease:
        """A lease on `name`, not yet taken."""
        ...

    async def owners(self, names: Sequence[str]) -> dict[str, dict[str, object]]:
        """Who holds each of `names` (absent: nobody)."""
        ...


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReadSide:
    """The stores the read side works on: events, what the store says of itself, leases, views."""

    store: EventStore
    inspector: StoreInspector
    leases: Leases
    db: AsyncDatabase[Document]
    clock: Callable[[], datetime] = field(default=utc_now)
