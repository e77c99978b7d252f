"""A rebuild's documents kept in memory between flushes, so a hot document is written once a window.

A rebuild folds the whole history into a new generation that nobody else writes (the rebuild
holds its lock, and live updates keep the old generation until the swap). Page by page, a
product or stock document is read and rewritten on every page that touches its SKU: at a
million events over ten thousand SKUs that is a third of a million round-trip writes for ten
thousand documents. Here the documents stay in memory: each page folds into them, and they are
written back (guarded, like any write) only when a window of events has gone by (the more
documents a flush would rewrite, the longer the window) or too many are held. The runner saves
the checkpoint after each flush, never before (see `subscriptions.Buffered`), so a crash re-reads
the unflushed window and the guards (`_last`) keep every effect exactly-once. Memory is bounded:
past `max_docs` documents the cache is emptied after a flush, and documents are read back from
the collection when next touched.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Generic

from pymongo import InsertOne, ReplaceOne

from core.mongo import find_by_ids
from core.supervisor import describe, kind_of
from eventstore.records import StoredEvent
from projections.base import DocumentProjection, guarded_bulk_write
from projections.documents import FoldedT
from subscriptions import ConcurrentWrite, ProjectorError

WINDOW_EVENTS = 50_000  # events folded in memory between flushes, at least
# A flush rewrites every dirty document, so it waits until it has folded this many events per
# document it will write. At a million events over ten thousand SKUs, flushing products every
# 50,000 events rewrote each SKU's document twenty times over; this way about five. The events a
# crash re-reads stay bounded: at most this many per document held (MAX_DOCUMENTS).
EVENTS_PER_WRITE = 20
MAX_DOCUMENTS = 20_000  # documents kept between flushes; about 30 MiB of product documents
FLUSH_CHUNK = 1_000  # documents per bulk write when flushing


class FlushFailed(Exception):
    """A flush failed for a reason other than an outage or a race: some document is at fault."""


class WriteBehind(Generic[FoldedT]):
    """A document projection for a rebuild, folding in memory and writing at `flush`."""

    def __init__(
        self,
        inner: DocumentProjection[FoldedT],
        name: str,
        window: int = WINDOW_EVENTS,
        max_docs: int = MAX_DOCUMENTS,
        per_document: int = EVENTS_PER_WRITE,
    ) -> None:
        self.inner, self.name, self.handles = inner, name, inner.handles
        self.window, self.max_docs, self.per_document = window, max_docs, per_document
        self.docs: dict[str, FoldedT] = {}
        self.stored: dict[str, str] = {}  # the `_last` each cached document has in the collection
        self.dirty: set[str] = set()
        self.held = 0  # events folded since the last flush
        self.empty: bool | None = None  # the collection held nothing and nothing was evicted

    def due(self) -> bool:
        """Whether enough is held in memory to flush now."""
        if not self.dirty:
            return False
        if len(self.docs) >= self.max_docs:
            return True
        return self.held >= max(self.window, self.per_document * len(self.dirty))

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold the events into the cached documents (reading the ones not cached)."""
        by_key: dict[str, list[StoredEvent]] = {}
        for event in events:
            if (key := self.inner.key(event)) is not None:
                by_key.setdefault(key, []).append(event)
        await self._load([key for key in by_key if key not in self.docs])
        for key, evs in by_key.items():
            # Each document is folded on a copy and kept only whole: an event that fails leaves
            # its document as it was, and the runner isolates it. Re-folding after such a split
            # skips what went in already, by the token guard.
            if (folded := self._fold(key, evs)) is not None:
                self.docs[key] = folded
                self.dirty.add(key)
        self.held += len(events)

    async def flush(self) -> None:
        """Write every dirty document, guarded by the `_last` it has in the collection."""
        keys = sorted(self.dirty)
        for start in range(0, len(keys), FLUSH_CHUNK):
            chunk = keys[start : start + FLUSH_CHUNK]
            try:
                await guarded_bulk_write(self.inner.collection, [self._write(k) for k in chunk])
            except ConcurrentWrite:
                raise
            except Exception as exc:
                if kind_of(exc) == "infrastructure":
                    raise
                raise FlushFailed(f"{self.name}: {describe(exc)}") from exc
            for key in chunk:
                self.stored[key] = self.docs[key]["_last"]
        self.dirty.clear()
        self.held = 0
        if len(self.docs) >= self.max_docs:
            self.docs.clear()
            self.stored.clear()
            self.empty = False

    def discard(self) -> None:
        """Forget everything held (after a failed flush, the collection is the truth)."""
        self.docs.clear()
        self.stored.clear()
        self.dirty.clear()
        self.held, self.empty = 0, False

    async def _load(self, keys: list[str]) -> None:
        if self.empty is None:
            self.empty = await self.inner.collection.find_one({}, {"_id": 1}) is None
        if not keys or self.empty:
            return  # a fresh generation, all in memory: what is not cached does not exist
        for key, doc in (await find_by_ids(self.inner.collection, keys)).items():
            self.docs[key], self.stored[key] = doc, doc["_last"]

    def _fold(self, key: str, events: list[StoredEvent]) -> FoldedT | None:
        doc = self.docs.get(key)
        pending = [e for e in events if e.token > (doc["_last"] if doc else "")]
        if not pending:
            return None
        folded = copy.deepcopy(doc) if doc else None
        for event in pending:
            try:
                folded = self.inner.fold(folded, event)
            except Exception as exc:
                raise ProjectorError(event, exc) from exc
        assert folded is not None
        folded["_id"], folded["_last"] = key, pending[-1].token
        return folded

    def _write(self, key: str) -> InsertOne[Any] | ReplaceOne[Any]:
        doc, stored = self.docs[key], self.stored.get(key)
        if stored is None:
            return InsertOne(dict(doc))  # a copy: the driver adds nothing to the cached one
        return ReplaceOne({"_id": key, "_last": stored}, doc)
