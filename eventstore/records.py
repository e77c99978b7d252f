"""What goes into and comes out of the event store, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventstore.positions import Position


class EventStoreError(Exception):
    """Base class of event store errors."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the writer expected (a concurrent write won)."""

    def __init__(self, stream_id: UUID, expected: int, actual: int | None = None) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        super().__init__(f"stream {stream_id}: expected version {expected}, found {actual}")


class AppendAborted(EventStoreError):
    """The database aborted the append (a deadlock or serialization failure): nothing was
    written, and the same append may well succeed if tried again."""


class DuplicateEvent(EventStoreError):
    """An event with one of the appended ids is stored already: nothing was written.

    Events that may happen only once carry an id derived from what makes them unique, so this
    says that what they record was decided before (see StockItem).
    """


class StoreUnavailable(EventStoreError):
    """The database cannot be reached; nothing was written (but see OutcomeUnknown)."""

    infrastructure = True  # supervisors wait an outage out (core.supervisor.kind_of)


class OutcomeUnknown(StoreUnavailable):
    """The connection was lost once the append was sent: it may or may not have committed."""


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended."""

    type: str
    data: dict[str, Any]
    recorded_at: datetime
    schema_version: int = 1
    event_id: UUID | None = None


@dataclass(frozen=True)
class StreamAppend:
    """Events for one stream, to be appended if the stream is at `expected_version`."""

    stream_id: UUID
    stream_type: str
    expected_version: int
    events: list[NewEvent]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store holds it."""

    position: Position
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def token(self) -> str:
        """This event's position token."""
        return self.position.token


@dataclass(frozen=True)
class AppendResult:
    """Where a stream's appended events landed."""

    stream_id: UUID
    version: int
    position: Position
