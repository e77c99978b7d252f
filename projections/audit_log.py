"""The audit log: one document per event, keyed by global position, newest first on read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast
from uuid import UUID

from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from domain.registry import EVENT_TYPES
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.base import DUPLICATE_KEY, ReadModel
from projections.documents import AuditEntry


def audit_entry(event: StoredEvent) -> AuditEntry:
    """The audit document of an event; `_id` is its global position, so a repeat is refused."""
    meta = event.metadata
    return {
        "_id": event.position.position,
        "position": event.token,
        "event_id": str(event.event_id),
        "stream_id": str(event.stream_id),
        "stream_type": event.stream_type,
        "type": event.type,
        "version": event.version,
        "schema_version": event.schema_version,
        "data": event.data,
        "actor": meta.get("actor"),
        "correlation_id": meta.get("correlation_id"),
        "causation_id": meta.get("causation_id"),
        "request_id": meta.get("request_id"),
        "recorded_at": event.recorded_at,
    }


class AuditLogProjection(ReadModel):
    """`audit_log`: every event with actor, correlation and causation ids."""

    name = "audit_log"
    collection_name = "audit_log"
    handles = frozenset(EVENT_TYPES)

    @property
    def collection(self) -> AsyncCollection[AuditEntry]:
        """The collection this projection writes."""
        # MongoDB hands back plain dicts: the ones here are the entries `audit_entry` makes.
        return cast("AsyncCollection[AuditEntry]", self.collection_of(self.collection_name))

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Insert every event; ones already there (a redelivery) are left as they are."""
        if not events:
            return
        try:
            await self.collection.bulk_write(
                [InsertOne(audit_entry(e)) for e in events], ordered=False
            )
        except BulkWriteError as exc:
            if any(e["code"] != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def rewrite(self, events: Sequence[StoredEvent], upto: Position | None = None) -> int:
        """Write (or rewrite) the entries of these events, up to `upto`."""
        events = [e for e in events if upto is None or e.position <= upto]
        for event in events:
            entry = audit_entry(event)
            await self.collection.replace_one({"_id": entry["_id"]}, entry, upsert=True)
        return len(events)

    async def force(self, event: StoredEvent) -> None:
        """Write one event's entry."""
        await self.rewrite([event])

    def key(self, event: StoredEvent) -> str | None:
        """Each event has an entry of its own."""
        return event.token

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """An entry is fed by its own event only."""
        return {event.stream_id for event in events}
