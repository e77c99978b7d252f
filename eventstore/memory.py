"""An in-memory event store with the same contract as the PostgreSQL one (tests, examples)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from dataclasses import replace
from typing import NamedTuple
from uuid import UUID, uuid4

from core.ids import uuid7
from eventstore.base import (
    AlreadyAnswered,
    ClaimLost,
    Completion,
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyKey,
    SnapshotRecord,
    StoredResponse,
)
from eventstore.positions import ORIGIN, Position
from eventstore.records import (
    AppendResult,
    DuplicateEvent,
    StoredEvent,
    StreamAppend,
    WrongExpectedVersion,
)
from eventstore.serialization import UPCASTING, Upcasting


class KeyRecord(NamedTuple):
    """One idempotency key: its request, its lock (None once done), its answer as JSON text,
    and when (on the monotonic clock) it expires and its in-flight lock runs out."""

    request_hash: str
    lock: UUID | None
    response: str | None
    expires: float
    locked_until: float

    def free_for(self, request_hash: str, now: float) -> bool:
        """Whether a claim takes the key over: expired, or abandoned in flight by this body."""
        abandoned = self.lock is not None and self.locked_until < now
        return self.expires < now or (abandoned and self.request_hash == request_hash)

    def purgeable(self, now: float) -> bool:
        """Expired, and not in flight under a lock that is still running."""
        return self.expires < now and (self.lock is None or self.locked_until < now)


class InMemoryEventStore:
    """Keeps events in a list; one append at a time, so commit order is append order."""

    # Applied to every read, as in the PostgreSQL store: events as stored are never changed.
    upcasting: Upcasting = UPCASTING
    # Idempotency keys live and lock as long as the PostgreSQL store's (seconds; settable).
    idempotency_ttl: float = 86400.0
    lock_seconds: float = 30.0

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self._streams: dict[UUID, list[StoredEvent]] = {}
        self._event_ids: set[UUID] = set()  # the ids appenders chose (PostgreSQL: a unique key)
        self.snapshots: dict[UUID, SnapshotRecord] = {}
        self._transactions = itertools.count(1)
        self._lock = asyncio.Lock()
        self._keys: dict[tuple[str, str], KeyRecord] = {}  # by (actor, key)

    async def append(
        self, *streams: StreamAppend, completion: Completion | None = None
    ) -> list[AppendResult]:
        """Append to each stream at its expected version, all at once, or nothing.

        A stream given no events is only checked: the append happens if it is at that version.
        """
        await asyncio.sleep(0)  # a round trip, as to a server: concurrent commands interleave
        async with self._lock:
            for stream in streams:
                actual = len(self._streams.get(stream.stream_id, []))
                if actual != stream.expected_version:
                    raise WrongExpectedVersion(stream.stream_id, stream.expected_version, actual)
            given = [e.event_id for s in streams for e in s.events if e.event_id is not None]
            if len(set(given)) != len(given) or not self._event_ids.isdisjoint(given):
                raise DuplicateEvent(f"an event id of {given} is stored already")
            claim = None if completion is None else completion.claim
            if isinstance(claim, IdempotencyKey):  # taken with the append, as PostgreSQL does
                taken = self._claim(claim.actor, claim.key, claim.request_hash)
                if not isinstance(taken, IdempotencyClaim):
                    raise AlreadyAnswered(taken)
                claim = taken
            self._event_ids.update(given)
            txid = next(self._transactions)
            results = [self._write(txid, stream) for stream in streams]
            if completion is not None and claim is not None:
                self._complete(claim, completion.respond(results))
            return results

    def _write(self, txid: int, stream: StreamAppend) -> AppendResult:
        for offset, new in enumerate(stream.events, start=1):
            event = StoredEvent(
                position=Position(txid, len(self.events) + 1),
                event_id=new.event_id or uuid7(),
                stream_id=stream.stream_id,
                stream_type=stream.stream_type,
                version=stream.expected_version + offset,
                type=new.type,
                schema_version=new.schema_version,
                data=dict(new.data),
                metadata=dict(stream.metadata),
                recorded_at=new.recorded_at,
            )
            self.events.append(event)
            self._streams.setdefault(stream.stream_id, []).append(event)
        written = self._streams.get(stream.stream_id)
        if not written:  # only checked, never written: a stream at version 0
            return AppendResult(stream.stream_id, 0, ORIGIN)
        return AppendResult(stream.stream_id, written[-1].version, written[-1].position)

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        """A stream's events from `from_version` on, in version order."""
        # A round trip, as to a server: another command may append between this read and its
        # own append, so lost races (and the repository's retries) happen here too.
        await asyncio.sleep(0)
        events = self._streams.get(stream_id, [])[max(from_version, 1) - 1 :]
        return self.upcasting.events([replace(e) for e in events[:limit]])

    async def read_all(self, after: Position | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Events after `after` in commit order."""
        after = after or ORIGIN
        return self.upcasting.events([e for e in self.events if e.position > after][:limit])

    async def read_by_position(
        self, upto: Position, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """The events up to `upto` in commit order, in position order from above `after`."""
        events = (e for e in self.events if e.position <= upto and e.position.position > after)
        return self.upcasting.events(sorted(events, key=_by_position)[:limit])

    async def purge_idempotency(self, limit: int) -> int:
        """Delete at most `limit` expired records nobody holds, oldest first; how many went."""
        now = time.monotonic()
        expired = [k for k, record in self._keys.items() if record.purgeable(now)]
        for key in heapq.nsmallest(limit, expired, key=lambda k: self._keys[k].expires):
            del self._keys[key]
        return min(limit, len(expired))

    async def claim_idempotency(
        self, actor: str, key: str, request_hash: str
    ) -> IdempotencyClaim | StoredResponse:
        """Own `key`, or get its stored response; raise IdempotencyConflict otherwise."""
        return self._claim(actor, key, request_hash)

    def _claim(self, actor: str, key: str, request_hash: str) -> IdempotencyClaim | StoredResponse:
        now, record = time.monotonic(), self._keys.get((actor, key))
        # As in PostgreSQL: a new, expired or abandoned key (same body, lock run out) is taken.
        if record is None or record.free_for(request_hash, now):
            lock, expires = uuid4(), now + self.idempotency_ttl
            self._keys[(actor, key)] = KeyRecord(
                request_hash, lock, None, expires, now + self.lock_seconds
            )
            return IdempotencyClaim(actor, key, lock)
        if record.request_hash != request_hash:
            raise IdempotencyConflict("body_mismatch")
        if record.response is None:
            raise IdempotencyConflict("in_flight")
        stored: StoredResponse = json.loads(record.response)
        return stored

    def _complete(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        record = self._keys.get((claim.actor, claim.key))
        if record is None or record.lock != claim.lock_token:
            raise ClaimLost(claim.key)
        # Kept as JSON, as PostgreSQL keeps it: what is not JSON fails here too, and a caller
        # changing its dict afterwards does not change the stored answer.
        done = record._replace(lock=None, response=json.dumps(response))
        self._keys[(claim.actor, claim.key)] = done

    async def complete_idempotency(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        """Store the response of a claimed request that appended nothing."""
        self._complete(claim, response)

    async def release_idempotency(self, claim: IdempotencyClaim) -> None:
        """Forget a claim whose request failed."""
        record = self._keys.get((claim.actor, claim.key))
        if record is not None and record[1] == claim.lock_token:
            del self._keys[(claim.actor, claim.key)]

    async def load_latest(self, stream_id: UUID) -> tuple[SnapshotRecord | None, list[StoredEvent]]:
        """The stream's snapshot, if any, and the events after it."""
        record = self.snapshots.get(stream_id)
        return record, await self.read_stream(stream_id, record.version + 1 if record else 1)

    async def save_snapshot(self, record: SnapshotRecord) -> None:
        """Keep `record` (as JSON, as PostgreSQL would) unless a later version is kept."""
        kept = self.snapshots.get(record.stream_id)
        if kept and kept.version >= record.version and kept.state_version == record.state_version:
            return
        self.snapshots[record.stream_id] = replace(
            record, state=json.loads(json.dumps(record.state))
        )

    async def drop_snapshots(self, stream_id: UUID | None = None) -> int:
        """Delete one stream's snapshot, or all; how many were deleted."""
        if stream_id is None:
            count, self.snapshots = len(self.snapshots), {}
            return count
        return 1 if self.snapshots.pop(stream_id, None) else 0


def _by_position(event: StoredEvent) -> int:
    return event.position.position
