"""The completeness audit: prove each projection applied every event it should, list holes.

Only events up to the projection's checkpoint count: later ones are lag, not holes. Parked
events are holes the projection already knows about, and are listed as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.inspect import positions, stream_versions
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import StoredEvent
from projections.aliases import Aliases
from projections.base import Document
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.sales_daily import ORDER_EVENTS, count, empty_day, fold_orders

Hole = dict[str, Any]
VERSIONED = {
    "products": ("Product", "_id"),
    "stock": ("StockItem", "stream_id"),
    "orders": ("Order", "_id"),
}


async def audit_projection(
    name: str, engine: AsyncEngine, db: AsyncDatabase[Document]
) -> dict[str, Any]:
    """{checked, holes} for one projection, as of its checkpoint."""
    upto = await Checkpoints(db).load(name)
    parked = [
        {
            "kind": "parked",
            "position": p["position"],
            "stream_id": p["stream_id"],
            "error": p["error"],
        }
        for p in await ParkedEvents(db).list(name)
    ]
    if upto is None:
        return {"checked": 0, "holes": parked, "checkpoint": None}
    _, names = await Aliases(db).live(name)
    collection = db[names[name]]
    if name in VERSIONED:
        checked, holes = await _versions(engine, collection, *VERSIONED[name], upto)
    elif name == "audit_log":
        checked, holes = await _positions(engine, collection, upto)
    else:
        checked, holes = await _sales(engine, collection, upto)
    return {"checked": checked, "holes": holes + parked, "checkpoint": upto.token}


async def _versions(
    engine: AsyncEngine, collection: Any, stream_type: str, id_field: str, upto: Position
) -> tuple[int, list[Hole]]:
    """Every stream has a document at the stream's last version."""
    expected = await stream_versions(engine, stream_type, upto)
    found = {
        str(doc[id_field]): doc.get("version")
        async for doc in collection.find({}, {id_field: 1, "version": 1})
    }
    holes = [
        {"kind": "missing" if sid not in found else "stale", "stream_id": sid,
         "expected_version": version, "found_version": found.get(sid)}
        for sid, version in sorted(expected.items())
        if found.get(sid) != version
    ]  # fmt: skip
    return len(expected), holes


async def _positions(
    engine: AsyncEngine, collection: Any, upto: Position
) -> tuple[int, list[Hole]]:
    """Every event has its audit entry (and nothing else is there)."""
    expected = await positions(engine, upto)
    found = {
        doc["_id"] async for doc in collection.find({"_id": {"$lte": upto.position}}, {"_id": 1})
    }
    holes = [{"kind": "missing", "position": p} for p in sorted(expected - found)]
    holes += [{"kind": "unexpected", "position": p} for p in sorted(found - expected)]
    return len(expected), holes


async def _sales(engine: AsyncEngine, collection: Any, upto: Position) -> tuple[int, list[Hole]]:
    """Each day's counters equal a recount of the order events."""
    events = await _order_events(engine, upto)
    _, effects = fold_orders({}, events)
    expected: dict[str, Document] = {}
    for effect in effects:
        count(expected.setdefault(effect.day, empty_day(effect.day)), [effect])
    found = {doc["_id"]: doc async for doc in collection.find({})}
    holes = []
    for date in sorted(set(expected) | set(found)):
        want, have = _figures(expected.get(date)), _figures(found.get(date))
        if want != have:
            holes.append({"kind": "wrong_totals", "day": date, "expected": want, "found": have})
    return len(events), holes


def _figures(doc: Document | None) -> dict[str, Any]:
    if doc is None:
        return {"orders": 0, "revenue_cents": 0, "skus": []}
    skus = [row for row in doc["skus"] if row["units"] or row["revenue_cents"]]
    return {"orders": doc["orders"], "revenue_cents": doc["revenue_cents"], "skus": skus}


async def _order_events(engine: AsyncEngine, upto: Position) -> Sequence[StoredEvent]:
    store, found, after = PostgresEventStore(engine), [], None
    while page := await store.read_all(after, 5000):
        found += [e for e in page if e.type in ORDER_EVENTS and e.position <= upto]
        if page[-1].position >= upto:
            break
        after = page[-1].position
    return found
