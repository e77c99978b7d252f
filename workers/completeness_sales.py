"""The completeness audit of `sales_daily`: each order's state, each day's totals, each day's SKUs.

Orders are refolded like any document. A counter document (a day's totals in `sales_daily`,
one SKU's figures on one day in `sales_daily_skus`) holds every effect on it (a confirmation
counts an order, a cancellation takes it back) up to max(checkpoint, its own `_last`). The
counters are read first, the orders are listed up to the newest of those bounds, and each
order's effects are counted into each counter document up to that document's bound.

The counters are held as figures, a few integers per day and per SKU sold that day: what the
days' documents held when they carried their SKUs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pymongo.asynchronous.collection import AsyncCollection

from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.counters import Shape, Tally
from projections.documents import Document, SalesOrderState
from projections.sales_daily import (
    DAY,
    DAY_SKU,
    ORDER_EVENTS,
    SalesDailyProjection,
    day_tallies,
    fold_order,
    sku_tallies,
)
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

Figures = dict[str, Document]  # counter document key -> its counters


async def audit_sales(
    projection: SalesDailyProjection, side: ReadSide, upto: Position, skip: set[str]
) -> tuple[int, list[Hole]]:
    """Holes in the order states, in the days' totals and in the (day, SKU) counters."""
    days, day_skus, bounds = await _counters(projection, upto.token)
    newest = Position.parse(max([upto.token, *bounds.values()]))
    store, checked, holes = side.store, 0, []
    expected: tuple[Figures, Figures] = ({}, {})
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
    holes += _wrong(DAY, expected[0], days) + _wrong(DAY_SKU, expected[1], day_skus)
    return checked, holes + await unexpected(side.inspector, projection.orders, UUID)


async def _counters(
    projection: SalesDailyProjection, upto: str
) -> tuple[Figures, Figures, dict[str, str]]:
    """The days' and the (day, SKU) counters as they are, and each one's bound."""
    days = await _figures(projection.days, DAY)
    day_skus = await _figures(projection.day_skus, DAY_SKU)
    bounds = {key: max(upto, doc["_last"]) for key, doc in (days | day_skus).items()}
    return days, day_skus, bounds


async def _figures(collection: AsyncCollection[Any], shape: Shape) -> Figures:
    """{key: {counter: value, _last}} of every document of a counter collection."""
    fields = dict.fromkeys(("_last", *shape.names), 1)
    return {doc.pop("_id"): doc async for doc in collection.find({}, fields)}


def _state(state: SalesOrderState | None, event: StoredEvent) -> SalesOrderState:
    return fold_order(state, event)[0]


def _count(
    expected: tuple[Figures, Figures],
    events: list[StoredEvent],
    bounds: dict[str, str],
    upto: str,
) -> None:
    """Count one order's effects into its counters, each up to that counter's bound."""
    state: SalesOrderState | None = None
    for event in events:
        try:
            state, effect = fold_order(copy.deepcopy(state), event)
        except Exception:  # parked by the projection; reported by the refold
            continue
        if effect is not None:
            _add(DAY, expected[0], day_tallies([effect]), bounds, upto)
            _add(DAY_SKU, expected[1], sku_tallies([effect]), bounds, upto)


def _add(
    shape: Shape, figures: Figures, tallies: Iterable[Tally], bounds: dict[str, str], upto: str
) -> None:
    for tally in tallies:
        if tally.token <= bounds.get(tally.key, upto):
            figures[tally.key] = shape.figures([tally], figures.get(tally.key))


def _wrong(shape: Shape, expected: Figures, found: Figures) -> list[Hole]:
    """A hole for each counter document whose figures are not the expected ones.

    A document missing counts as zeros: an order confirmed then cancelled leaves one, which
    a rebuild makes too, and whether it is there is no figure of the dashboards.
    """
    holes = []
    for key in sorted(set(expected) | set(found)):
        want, have = shape.figures([], expected.get(key)), shape.figures([], found.get(key))
        if want != have:
            day, _, sku = key.partition("|")
            where = {"day": day, "sku": sku} if sku else {"day": day}
            holes.append({"kind": "wrong_totals", **where, "expected": want, "found": have})
    return holes
