"""The event store port: what the command side, workers and ops rely on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeAlias
from uuid import UUID

from eventstore.positions import Position
from eventstore.records import AppendResult, StoredEvent, StreamAppend

# A command's answer as the caller encoded it: a JSON object, kept so a repeated Idempotency-Key
# gets the very same answer. The store returns it as it was given and never looks inside.
StoredResponse: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class IdempotencyClaim:
    """Proof that this request owns an in-flight idempotency key."""

    actor: str
    key: str
    lock_token: UUID


@dataclass(frozen=True)
class IdempotencyKey:
    """A request's idempotency key, not yet claimed, and the fingerprint of its request."""

    actor: str
    key: str
    request_hash: str


@dataclass(frozen=True)
class Completion:
    """Store `respond(results)` under `claim` in the same transaction as the append.

    A claim may be held already (an IdempotencyClaim), or be a key the append claims itself
    (an IdempotencyKey): then the append takes the key only if it is free, and appends nothing
    otherwise, raising AlreadyAnswered with the key's stored answer or IdempotencyConflict.
    """

    claim: IdempotencyClaim | IdempotencyKey
    respond: Callable[[list[AppendResult]], StoredResponse]
    # The caller vouches that `respond` uses the position only through its token (the command
    # API's answer does, and a test holds it to that): it is then rendered once, not twice.
    by_token: bool = False


class IdempotencyConflict(Exception):
    """The key is in use: by a request still in flight, or by one with a different body."""

    def __init__(self, reason: str) -> None:
        self.reason = reason  # "in_flight" or "body_mismatch"
        super().__init__(reason)


class AlreadyAnswered(Exception):
    """The key was answered by an earlier request: here is its stored answer, to replay."""

    def __init__(self, response: StoredResponse) -> None:
        self.response = response
        super().__init__("answered already")


class ClaimLost(Exception):
    """Another request took over this idempotency key; this one must not take effect."""


@dataclass(frozen=True)
class SnapshotRecord:
    """One stream's latest snapshot as stored."""

    stream_id: UUID
    stream_type: str
    state_version: int
    version: int
    position: Position  # of the event at `version`: a loaded aggregate answers with it
    state: dict[str, Any]
    taken_at: datetime


class SnapshotStore(Protocol):
    """Where snapshots are kept, beside the events they summarise."""

    async def load_latest(self, stream_id: UUID) -> tuple[SnapshotRecord | None, list[StoredEvent]]:
        """The stream's snapshot, if any, and the events after it (one round trip)."""
        ...

    async def save_snapshot(self, record: SnapshotRecord) -> None:
        """Keep `record` unless a snapshot of a later version is kept already."""
        ...

    async def drop_snapshots(self, stream_id: UUID | None = None) -> int:
        """Delete one stream's snapshot, or all; how many were deleted."""
        ...


class EventStore(SnapshotStore, Protocol):
    """Append-only event storage with reads in commit order."""

    async def append(
        self, *streams: StreamAppend, completion: Completion | None = None
    ) -> list[AppendResult]:
        """Append to each stream at its expected version, all in one transaction, or nothing.

        A stream given no events is only checked: the append happens if it is at that version.
        With a `completion`, its answer is stored under its key in the same transaction; a key
        it must take and cannot raises AlreadyAnswered or IdempotencyConflict, appending nothing.
        """
        ...

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        """A stream's events from `from_version` on, in version order."""
        ...

    async def read_all(self, after: Position | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Committed events after `after`, in commit order, never skipping a late commit."""
        ...

    async def read_by_position(
        self, upto: Position, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """The events up to `upto` in commit order, in position order from above `after`.

        For scans that meet another index kept by position (the audit log's `_id`): every event
        up to a token its reader reached has committed, so no later page can gain one.
        """
        ...

    async def claim_idempotency(
        self, actor: str, key: str, request_hash: str
    ) -> IdempotencyClaim | StoredResponse:
        """Own `key` (a claim) or get the stored response; raise IdempotencyConflict otherwise."""
        ...

    async def complete_idempotency(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        """Store the response of a claimed request that appended nothing."""
        ...

    async def release_idempotency(self, claim: IdempotencyClaim) -> None:
        """Forget a claim whose request failed, so the client may retry with the same key."""
        ...

    async def purge_idempotency(self, limit: int) -> int:
        """Delete at most `limit` expired idempotency records nobody holds; how many went.

        Never waits for a record a request holds, so concurrent purges are harmless; a purged
        key is new again (its next request is a fresh claim).
        """
        ...
