"""What follows the event store, and how it fails: shared by projections, processes and workers.

A subscriber receives committed events in commit order and must apply them idempotently. It is
neither a projection nor a process by nature, so this contract lives apart from both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

from eventstore.positions import Position
from eventstore.records import StoredEvent

# Every subscriber by name. The registries that build them check they match these names, so a
# process that only needs the names (status, the ops routes) imports no projection code.
PROJECTION_NAMES = ("products", "stock", "orders", "sales_daily", "audit_log")
FULFILMENT = "fulfilment"
SUBSCRIBER_NAMES = (*PROJECTION_NAMES, FULFILMENT)


class Subscriber(Protocol):
    """Something that follows the event store: a projection or a process manager."""

    name: str
    handles: frozenset[str]

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Apply events (all of types in `handles`, in commit order); must be idempotent."""
        ...


@runtime_checkable
class Buffered(Subscriber, Protocol):
    """A subscriber that holds its effects in memory until `flush` (a rebuild's write-behind).

    Its runner saves a checkpoint only after a flush, so a crash re-reads what was held.
    """

    def due(self) -> bool:
        """Whether enough is held to flush now."""
        ...

    async def flush(self) -> None:
        """Write everything held."""
        ...

    def discard(self) -> None:
        """Forget everything held (a flush failed)."""
        ...


class Repairable(Subscriber, Protocol):
    """A projection that can rebuild some documents from given events (replay, retry-parked)."""

    def key(self, event: StoredEvent) -> str | None:
        """The document `event` changes (None: none)."""
        ...

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """Streams whose events feed the documents `events` touch."""
        ...

    async def rewrite(self, events: Sequence[StoredEvent], upto: Position | None = None) -> int:
        """Replace the documents `events` touch with a fold of these events up to `upto`."""
        ...

    async def force(self, event: StoredEvent) -> None:
        """Fold one never-applied event into its current documents."""
        ...


class ProjectorError(Exception):
    """Subscriber code failed on one event (as opposed to a store failing)."""

    def __init__(self, event: StoredEvent, cause: BaseException) -> None:
        self.event, self.cause = event, cause
        super().__init__(f"{event.type} at {event.token}: {type(cause).__name__}: {cause}")


class ConcurrentWrite(Exception):
    """A guarded write matched nothing: someone else changed the document; retry the batch."""
