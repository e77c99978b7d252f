"""The completeness audit: prove each projection applied every event it should, list holes.

A hole is reported if and only if a document differs from what the events say. The audit
refolds: for each document, the fold (the projection's own code) of the events that feed it,
compared field by field. A count or a last version would miss a skipped middle event, a wrong
field, or events of types a projection does not handle (a rejected reservation moves the stock
stream's version and changes nothing in the `stock` view).

Exact while the projection moves:
- The checkpoint C is read first; events after it are lag, not holes. Events are chosen by the
  store's commit order, (transaction id, position), never by position alone.
- Every fold-per-document view keeps in `_last` the token of the newest event folded into a
  document, and takes events in commit order. So a document read at any moment must equal the
  fold of its events up to max(C, its `_last`), all of them below the store's watermark (the
  worker read them). A counter of `sales_daily` (a day's totals, a day's figures for one SKU)
  likewise holds its effects up to max(C, its `_last`).
- The live generation is read at the start and again at the end; a rebuild's swap in between
  restarts the audit on the new generation.
- An event the fold rejects is one the projection parks; parked events are listed as holes.

Bounded memory: streams are listed a page at a time by key range (a short statement each) and
their events read through the store, upcast like every reader's. The one-document views read
each stream a chunk at a time (workers/completeness_docs.py), so a long stream is never held
whole; the audit log is merged with the store's events by position, one sorted cursor on each
side; documents with no stream are found by paging the collection by `_id`. The sales counters
are recounted in a scratch collection of the read-model database and compared by one sorted
cursor (workers/completeness_sales.py), so no audit's memory grows with history.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import bson
from pymongo.asynchronous.collection import AsyncCollection

from domain.values import stock_item_id
from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.aliases import Aliases
from projections.audit_log import audit_entry
from projections.base import DocumentProjection
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.documents import Document, FoldedT
from projections.registry import build
from subscriptions.ports import ReadSide, StoreInspector

Hole = dict[str, Any]
PAGE = 200
ATTEMPTS = 3
# Projection -> (the stream type whose streams make its documents, document key -> stream id).
PRIMARY: dict[str, tuple[str, Callable[[str], UUID]]] = {
    "products": ("Product", UUID),
    "stock": ("StockItem", stock_item_id),
    "orders": ("Order", UUID),
    "sales_daily": ("Order", UUID),
}


async def audit_projection(name: str, side: ReadSide) -> dict[str, Any]:
    """{checked, holes, checkpoint} for one projection, as of its checkpoint."""
    db, aliases = side.db, Aliases(side.db)
    for _ in range(ATTEMPTS):
        upto = await Checkpoints(db).load(name)  # first: everything after it is lag
        generation, names = await aliases.live(name)
        parked = await ParkedEvents(db).list(name)
        skipped = await ParkedEvents(db).skipped(name)
        # Neither is in the documents: parked ones are holes, skipped ones a decision.
        checked, holes = await _audit(name, side, names, upto, parked + skipped)
        if (await aliases.live(name))[0] == generation:
            holes += [_parked_hole(p) for p in parked]
            token = upto and upto.token
            return {
                "checked": checked,
                "holes": holes,
                "skipped": len(skipped),
                "checkpoint": token,
            }
    raise RuntimeError(f"{name}: the live generation kept changing during the audit")


def _parked_hole(parked: Document) -> Hole:
    keys = ("position", "stream_id", "error")
    return {"kind": "parked", **{k: parked[k] for k in keys}}


async def _audit(
    name: str,
    side: ReadSide,
    names: dict[str, str],
    upto: Position | None,
    parked: list[Document],
) -> tuple[int, list[Hole]]:
    if upto is None:
        return 0, []
    projection = build(name, side.db, names)
    skip = {p["position"] for p in parked}
    if name == "audit_log":
        collection = side.db[names["audit_log"]]
        return await _audit_log(side, collection, upto)
    if name == "sales_daily":
        # Imported here: the sales audit builds on this module's helpers.
        from workers.completeness_sales import audit_sales

        return await audit_sales(projection, side, upto, skip)  # type: ignore[arg-type]
    assert isinstance(projection, DocumentProjection)
    # Imported here, as the sales audit is: it builds on this module's helpers.
    from workers.completeness_docs import audit_documents

    return await audit_documents(projection, side, upto, skip)


def primary_streams(
    inspector: StoreInspector, projection: Any, upto: Position
) -> AsyncIterator[list[UUID]]:
    """Pages of the streams that make a projection's documents, with a handled event by `upto`."""
    stream_type = PRIMARY[projection.name][0]
    return inspector.stream_ids(stream_type, projection.handles, upto, PAGE)


# Streams read at once: a page's worth at a time took as many connections as the pool allowed,
# and an audit beside busy workers ran the server out of connections.
READ_CONCURRENCY = 4


async def read_streams(store: EventStore, ids: Iterable[UUID]) -> list[list[StoredEvent]]:
    """Whole streams, through the store's read path (so upcast like every reader's)."""
    ordered, streams = sorted(ids), []
    for start in range(0, len(ordered), READ_CONCURRENCY):
        chunk = ordered[start : start + READ_CONCURRENCY]
        streams += await asyncio.gather(*(store.read_stream(i) for i in chunk))
    return streams


def refold(
    fold: Callable[[FoldedT | None, StoredEvent], FoldedT],
    key: str,
    events: Iterable[StoredEvent],
    bound: str,
    skip: set[str],
) -> tuple[FoldedT | None, list[Hole]]:
    """The document the events up to `bound` make, and the events that cannot be folded."""
    folding = Refold(fold, key, bound, skip)
    for event in events:
        folding.add(event)
    return folding.doc, folding.holes


@dataclass
class Refold:
    """One document folded again from its events, one at a time, up to `bound`.

    A rejected event is one the live projection parks: left out of the fold, and a hole only
    if it is not parked (then the projection dropped it without saying so).
    """

    fold: Callable[[Any, StoredEvent], Any]
    key: str
    bound: str
    skip: set[str]
    doc: Any = None
    holes: list[Hole] = field(default_factory=list)

    def add(self, event: StoredEvent) -> None:
        """Fold `event` in, if it is within the bound and can be folded."""
        if event.token > self.bound:
            return
        try:
            doc = self.fold(copy.deepcopy(self.doc), event)
        except Exception as exc:
            if event.token not in self.skip:
                self.holes.append(
                    {"kind": "unprojectable", "position": event.token, "error": str(exc)}
                )
            return
        doc["_id"], doc["_last"] = self.key, event.token
        self.doc = doc


def compare(
    collection: AsyncCollection[Any], key: str, expected: Mapping[str, Any] | None, found: Any
) -> list[Hole]:
    """[] if `found` is `expected` as the collection stores it, else the hole."""
    if expected is None:
        return [] if found is None else [{"kind": "unexpected", "id": key}]
    if found is None:
        return [{"kind": "missing", "id": key}]
    want = bson.decode(bson.encode(expected), codec_options=collection.codec_options)
    fields = sorted(f for f in set(want) | set(found) if want.get(f) != found.get(f))
    if not fields:
        return []
    return [
        {
            "kind": "wrong",
            "id": key,
            "expected": {f: want.get(f) for f in fields},
            "found": {f: found.get(f) for f in fields},
        }
    ]


async def unexpected(
    inspector: StoreInspector,
    collection: AsyncCollection[Any],
    stream_of: Callable[[str], UUID],
) -> list[Hole]:
    """Documents whose stream the store does not have, paging the collection by `_id`."""
    holes: list[Hole] = []
    async for keys in _pages(collection):
        streams = {}
        for key in keys:
            try:
                streams[key] = stream_of(key)
            except (ValueError, TypeError):
                holes.append({"kind": "unexpected", "id": key})
        known = await inspector.known_streams(streams.values())
        holes += [{"kind": "unexpected", "id": k} for k, s in streams.items() if s not in known]
    return holes


async def _pages(collection: AsyncCollection[Document]) -> AsyncIterator[list[Any]]:
    """Every document's `_id` in order, a page at a time, from one cursor.

    One cursor, fetched a page at a time, rather than a query per page from the last `_id`: a
    server that answers a range by scanning the collection (the MongoDB-wire server the tests
    and benchmarks run) made that quadratic, some four seconds a page at 200,000 entries.
    """
    size = PAGE * 5
    cursor = collection.find({}, {"_id": 1}).sort("_id", 1).batch_size(size)
    keys: list[Any] = []
    async for doc in cursor:
        keys.append(doc["_id"])
        if len(keys) == size:
            yield keys
            keys = []
    if keys:
        yield keys


async def _audit_log(
    side: ReadSide, collection: AsyncCollection[Document], upto: Position
) -> tuple[int, list[Hole]]:
    """Every event up to the checkpoint has its exact entry; every entry has its event.

    A merge join in position order, which is the entries' `_id`: one sorted cursor on the log
    beside the store's events up to the checkpoint, read by position. Linear on any server and
    flat in memory; a lookup per page of events was not (a server that answers a long `$in`
    slowly made it quadratic at a million entries). An entry with no event up to the checkpoint
    is lag if the store has its event (the projection moved on since), else unexpected.
    """
    events = _by_position(side.store, upto)
    event = await anext(events, None)
    checked, holes, unmatched = 0, [], []
    async for entry in collection.find({}).sort("_id", 1).batch_size(PAGE * 5):
        key = entry["_id"]
        if not isinstance(key, int) or isinstance(key, bool):  # no event has such a position
            holes.append({"kind": "unexpected", "position": key})
            continue
        while event is not None and event.position.position < key:  # no entry: missing
            holes += compare(collection, event.token, audit_entry(event), None)
            checked, event = checked + 1, await anext(events, None)
        if event is not None and event.position.position == key:
            holes += compare(collection, event.token, audit_entry(event), entry)
            checked, event = checked + 1, await anext(events, None)
            continue
        unmatched.append(key)
        if len(unmatched) == PAGE * 5:
            holes, unmatched = holes + await _unknown(side, unmatched), []
    while event is not None:
        holes += compare(collection, event.token, audit_entry(event), None)
        checked, event = checked + 1, await anext(events, None)
    return checked, holes + await _unknown(side, unmatched)


async def _by_position(store: EventStore, upto: Position) -> AsyncIterator[StoredEvent]:
    """The events up to `upto` in commit order, in position order, a page at a time."""
    after = 0
    while page := await store.read_by_position(upto, after, PAGE * 5):
        for event in page:
            yield event
        after = page[-1].position.position


async def _unknown(side: ReadSide, positions: list[int]) -> list[Hole]:
    """Entries whose position the store does not have."""
    known = await side.inspector.known_positions(positions) if positions else set()
    return [{"kind": "unexpected", "position": p} for p in positions if p not in known]
