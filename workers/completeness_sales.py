"""The completeness audit of `sales_daily`: each order's state, and each day's counters.

Orders are refolded like any document. A day holds every effect (a confirmation counts an
order, a cancellation takes it back) up to max(checkpoint, its `_last`): days are read first (one
small document each), the orders are listed up to the newest of those bounds, and each order's
effects are counted into its day up to that day's bound.
"""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.documents import SalesDayDocument, SalesOrderState
from projections.sales_daily import ORDER_EVENTS, SalesDailyProjection, count, empty_day, fold_order
from subscriptions.ports import ReadSide
from workers.completeness import (
    Hole,
    compare,
    documents,
    primary_streams,
    read_streams,
    refold,
    unexpected,
)


async def audit_sales(
    projection: SalesDailyProjection, side: ReadSide, upto: Position, skip: set[str]
) -> tuple[int, list[Hole]]:
    """Holes in the order states and in the days' counters."""
    days = {doc["_id"]: doc async for doc in projection.days.find({})}
    bounds = {day: max(upto.token, doc.get("_last", "")) for day, doc in days.items()}
    newest = Position.parse(max([upto.token, *bounds.values()]))
    store, checked, holes = side.store, 0, []
    expected: dict[str, SalesDayDocument] = {}
    async for ids in primary_streams(side.inspector, projection, newest):
        found = await documents(projection.orders, [str(i) for i in ids])
        for stream in await read_streams(store, ids):
            events = [e for e in stream if e.type in ORDER_EVENTS]
            key = str(events[0].stream_id)
            bound = max(upto.token, found[key]["_last"]) if key in found else upto.token
            state, bad = refold(_state, key, events, bound, skip)
            holes += bad + compare(projection.orders, key, state, found.get(key))
            _count(expected, events, bounds, upto.token)
            checked += 1
    for day in sorted(set(days) | set(expected)):
        want, have = _figures(expected.get(day)), _figures(days.get(day))
        if want != have:
            holes.append({"kind": "wrong_totals", "day": day, "expected": want, "found": have})
    return checked, holes + await unexpected(side.inspector, projection.orders, UUID)


def _state(state: SalesOrderState | None, event: StoredEvent) -> SalesOrderState:
    return fold_order(state, event)[0]


def _count(
    days: dict[str, SalesDayDocument],
    events: list[StoredEvent],
    bounds: dict[str, str],
    upto: str,
) -> None:
    """Count one order's effects into their day, up to that day's bound."""
    state: SalesOrderState | None = None
    for event in events:
        try:
            state, effect = fold_order(copy.deepcopy(state), event)
        except Exception:  # parked by the projection; reported by the refold
            continue
        if effect is not None and effect.token <= bounds.get(effect.day, upto):
            count(days.setdefault(effect.day, empty_day(effect.day)), [effect])


def _figures(doc: SalesDayDocument | None) -> dict[str, Any]:
    if doc is None:
        return {"orders": 0, "revenue_cents": 0, "skus": []}
    skus = [row for row in doc["skus"] if row["units"] or row["revenue_cents"]]
    return {"orders": doc["orders"], "revenue_cents": doc["revenue_cents"], "skus": skus}
