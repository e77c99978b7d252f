"""What every subscriber of the event store is, and the fold-per-document projection.

Exactly-once effects under at-least-once delivery: every document remembers the token of the
last event folded into it (`_last`). A batch loads its documents, folds only the events newer
than `_last`, and writes each document back guarded by the `_last` it read (compare-and-set).
A crash between the writes and the checkpoint therefore changes nothing on the re-run, and a
second writer (a lost lease) cannot apply a batch twice: its guarded writes match nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from core.mongo import find_by_ids
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.documents import Document, FoldedT
from subscriptions import ConcurrentWrite, ProjectorError

DUPLICATE_KEY = 11000
MappingT = TypeVar("MappingT", bound=Mapping[str, Any])


class ReadModel:
    """A projection's home: its collections, by logical name, wherever they physically are.

    `names` maps logical names to physical ones: a rebuild writes a new generation of
    collections, and readers follow an alias to whichever generation is live.
    """

    def __init__(self, db: AsyncDatabase[Document], names: Mapping[str, str] | None = None):
        self.db, self.names = db, dict(names or {})

    def collection_of(self, logical: str) -> AsyncCollection[Document]:
        """The physical collection behind `logical`."""
        return self.db[self.names.get(logical, logical)]


class DocumentProjection(ReadModel, Generic[FoldedT]):
    """A read model with one document per key, each folded from the events of that key."""

    name: str
    collection_name: str
    handles: frozenset[str]
    # Whether a rebuild folds the documents in memory between flushes (projections.write_behind):
    # for documents that live as long as the catalog and are rewritten all through history.
    write_behind = False

    @property
    def collection(self) -> AsyncCollection[FoldedT]:
        """The collection this projection writes."""
        # MongoDB hands back plain dicts: the ones here are the documents `fold` makes.
        return cast("AsyncCollection[FoldedT]", self.collection_of(self.collection_name))

    def key(self, event: StoredEvent) -> str | None:
        """The id of the document an event changes (None: no document)."""
        raise NotImplementedError

    def fold(self, doc: FoldedT | None, event: StoredEvent) -> FoldedT:
        """The document after `event` (pure: no I/O)."""
        raise NotImplementedError

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """Streams whose events feed the documents `events` touch (default: their own)."""
        return {event.stream_id for event in events}

    async def rewrite(self, events: Sequence[StoredEvent], upto: Position | None = None) -> int:
        """Replace the documents `events` key to with a fold of these events up to `upto`.

        For replays: the caller owns the projection and passes every event of those documents.
        """
        by_key: dict[str, list[StoredEvent]] = {}
        for event in events:
            if upto is not None and event.position > upto:
                continue
            if (key := self.key(event)) is not None:
                by_key.setdefault(key, []).append(event)
        for key, evs in by_key.items():
            doc: FoldedT | None = None
            for event in evs:
                doc = self.fold(doc, event)
            assert doc is not None
            doc["_id"], doc["_last"] = key, evs[-1].token
            await self.collection.replace_one({"_id": key}, doc, upsert=True)
        return len(by_key)

    async def force(self, event: StoredEvent) -> None:
        """Fold one event that was never applied (a parked one) into its current document."""
        key = self.key(event)
        if key is None:
            return
        doc = await self.collection.find_one({"_id": key})
        folded = self.fold(copy.deepcopy(doc) if doc else None, event)
        folded["_id"] = key
        folded["_last"] = max(doc["_last"], event.token) if doc else event.token
        await self.collection.replace_one({"_id": key}, folded, upsert=True)

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold the new events into their documents and write them back, guarded.

        Documents whose first event here creates them (a registration, a placed order) are
        inserted without being read first: the insert's unique `_id` is the check. If one
        existed after all (a batch seen before a crash), every document is read and the batch
        folded again; what did go in is guarded by `_last` like any write.
        """
        by_key: dict[str, list[StoredEvent]] = {}
        for event in events:
            key = self.key(event)
            if key is not None:
                by_key.setdefault(key, []).append(event)
        if not by_key:
            return
        new = {key for key, evs in by_key.items() if self._creates(evs[0])}
        try:
            await self._fold_and_write(by_key, set(by_key) - new)
        except ConcurrentWrite:
            if not new:
                raise
            await self._fold_and_write(by_key, set(by_key))

    def _creates(self, event: StoredEvent) -> bool:
        """Whether `event` makes a document from nothing (folding it onto none succeeds)."""
        try:
            self.fold(None, event)
        except Exception:  # not a creating event (or a poison one: the read path reports it)
            return False
        return True

    async def _fold_and_write(self, by_key: dict[str, list[StoredEvent]], read: set[str]) -> None:
        """Read the documents of `read` (the others are taken as new), fold, write guarded."""
        existing: dict[str, FoldedT] = {}
        if read:
            existing = await find_by_ids(self.collection, read)
        ops = [
            op for key, evs in by_key.items() if (op := self._write(key, existing.get(key), evs))
        ]
        await guarded_bulk_write(self.collection, ops)

    def _write(
        self, key: str, doc: FoldedT | None, events: list[StoredEvent]
    ) -> InsertOne[FoldedT] | ReplaceOne[FoldedT] | None:
        last = doc["_last"] if doc else ""
        pending = [e for e in events if e.token > last]
        if not pending:
            return None
        folded = copy.deepcopy(doc) if doc else None
        for event in pending:
            try:
                folded = self.fold(folded, event)
            except Exception as exc:
                raise ProjectorError(event, exc) from exc
        assert folded is not None
        folded["_id"], folded["_last"] = key, pending[-1].token
        if doc is None:
            return InsertOne(folded)
        return ReplaceOne({"_id": key, "_last": last}, folded)


async def guarded_bulk_write(
    collection: AsyncCollection[MappingT],
    ops: Sequence[InsertOne[MappingT] | ReplaceOne[MappingT] | UpdateOne],
) -> None:
    """Write all ops; if a guard or insert lost a race, raise ConcurrentWrite after the rest.

    Replacements and updates are guarded by their filter: each must match its document.
    """
    if not ops:
        return
    try:
        result = await collection.bulk_write(list(ops), ordered=False)
    except BulkWriteError as exc:
        codes = {error["code"] for error in exc.details.get("writeErrors", [])}
        if codes - {DUPLICATE_KEY}:
            raise
        raise ConcurrentWrite(
            f"{collection.name}: {len(codes)} documents changed under us"
        ) from exc
    replaces = sum(isinstance(op, ReplaceOne | UpdateOne) for op in ops)
    if result.matched_count != replaces:
        raise ConcurrentWrite(f"{collection.name}: {replaces - result.matched_count} guards failed")
