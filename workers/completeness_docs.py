"""The completeness audit of the one-document-per-key views (products, stock, orders), streaming.

Streams come a page at a time. The first few events of each name its documents and the streams
feeding them (a product's document is fed by its SKU's stock stream too); the page's documents
are read in one query; then each stream's documents are refolded from every stream feeding
them, merged in commit order a chunk at a time. Neither a page nor a long stream is held whole:
a SKU's stock stream grows with every order, and its document is checked all the same.

Exact while workers move (see workers/completeness.py): a document is read before the events
it is compared with, but for the first few; if it moved past the checkpoint after those were
read, they are read on from where they ended. A stream named only later, or a document found
only later that has moved past the checkpoint, starts that stream's refold over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from core.mongo import find_by_ids
from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.base import DocumentProjection
from subscriptions.ports import ReadSide
from workers.completeness import (
    PRIMARY,
    READ_CONCURRENCY,
    Hole,
    Refold,
    compare,
    primary_streams,
    unexpected,
)
from workers.stream_reads import StreamCursor, merged

# Events read first from each stream of a page: most streams whole, a page of long ones small.
FIRST_EVENTS = 20


async def audit_documents(
    projection: DocumentProjection[Any], side: ReadSide, upto: Position, skip: set[str]
) -> tuple[int, list[Hole]]:
    """Each document equals the fold of its events; every stream has its document."""
    checked, holes = 0, list[Hole]()
    async for ids in primary_streams(side.inspector, projection, upto):
        page = await _first_events(side.store, ids)
        keys = _keys(projection, page)
        seen = Seen(await find_by_ids(projection.collection, keys), keys)
        if any(doc["_last"] > upto.token for doc in seen.found.values()):
            for cursor in page:  # a worker moved a document on after these events were read
                cursor.reopen()
        for cursor in page:
            audit = StreamAudit(projection, side.store, upto.token, skip, seen)
            checked += await audit.run(cursor)
            holes += audit.holes
    holes += await unexpected(side.inspector, projection.collection, PRIMARY[projection.name][1])
    return checked, holes


async def _first_events(store: EventStore, ids: list[UUID]) -> list[StreamCursor]:
    """A cursor on each stream, holding its first few events (a few streams at a time)."""
    cursors = [StreamCursor(store, stream_id) for stream_id in sorted(ids)]
    for start in range(0, len(cursors), READ_CONCURRENCY):
        chunk = cursors[start : start + READ_CONCURRENCY]
        await asyncio.gather(*(cursor.read(FIRST_EVENTS) for cursor in chunk))
    return cursors


def _keys(projection: DocumentProjection[Any], cursors: Iterable[StreamCursor]) -> set[str]:
    """The documents the events read so far change."""
    events = (e for cursor in cursors for e in cursor.buffer if e.type in projection.handles)
    return {key for event in events if (key := projection.key(event)) is not None}


@dataclass
class Seen:
    """The documents of a page as read, and every key looked up (found or not)."""

    found: dict[str, Any]
    looked_up: set[str]


@dataclass
class StreamAudit:
    """The holes in the documents one stream's events change."""

    projection: DocumentProjection[Any]
    store: EventStore
    upto: str
    skip: set[str]
    seen: Seen
    holes: list[Hole] = field(default_factory=list)

    async def run(self, first: StreamCursor) -> int:
        """Refold and compare this stream's documents; how many were checked."""
        streams = self.projection.sources(list(first.buffer)) | {first.stream_id}
        cursor: StreamCursor | None = first
        while (folds := await self._refold(streams, cursor)) is None:
            cursor = None  # started over: every stream read again from its start
        for key, fold in folds.items():
            found = self.seen.found.get(key)
            self.holes += fold.holes + compare(self.projection.collection, key, fold.doc, found)
        return len(folds)

    async def _refold(
        self, streams: set[UUID], first: StreamCursor | None
    ) -> dict[str, Refold] | None:
        """Each document's refold from these streams in commit order; None to start over."""
        named: set[UUID] = set()

        def name_sources(events: list[StoredEvent]) -> None:
            named.update(self.projection.sources(events))

        cursors = [
            first
            if first is not None and stream == first.stream_id
            else StreamCursor(self.store, stream)
            for stream in sorted(streams)
        ]
        for cursor in cursors:
            cursor.on_read = name_sources
        folds: dict[str, Refold] = {}
        async for event in merged(cursors):
            key = self.projection.key(event) if event.type in self.projection.handles else None
            if key is None:
                continue
            if key not in folds and not await self._open(key, folds):
                return None
            folds[key].add(event)
        if not named <= streams:  # a later event named a stream feeding these documents too
            streams |= named  # the caller's set: the next attempt reads these as well
            return None
        return folds

    async def _open(self, key: str, folds: dict[str, Refold]) -> bool:
        """Start refolding document `key`; False if it was found only now, moved on since."""
        seen = self.seen
        if key not in seen.looked_up:
            seen.looked_up.add(key)
            doc = await self.projection.collection.find_one({"_id": key})
            if doc is not None:
                seen.found[key] = doc
                if doc["_last"] > self.upto:  # events read before it may stop short of it
                    return False
        doc = seen.found.get(key)
        bound = max(self.upto, doc["_last"]) if doc is not None else self.upto
        folds[key] = Refold(self.projection.fold, key, bound, self.skip)
        return True
