"""The completeness audit of `sales_daily`: each order's state, each day's totals, each day's SKUs.

Orders are refolded like any document. A counter document (a day's totals in `sales_daily`,
one SKU's figures on one day in `sales_daily_skus`) holds every effect on it (a confirmation
counts an order, a cancellation takes it back) up to max(checkpoint, its own `_last`). The
counters are read first, the orders are listed up to the newest of those bounds, and each
order's effects are counted into each counter document up to that document's bound.

Bounded memory: the recount lives in a scratch collection of the read-model database
(workers/audit_scratch.py), not in the audit's memory. The counters are copied into it first,
each with its figures as read and its bound, in batches. Each page of orders then adds its
effects with `$inc`: an effect up to the checkpoint is within every bound, so it is counted
(an upsert: a counter missing counts as zeros); a later one only into a counter read with a
bound at or after it (a guarded update, so a counter that was not there takes none). Last, one
cursor over the scratch, sorted by `_id`, compares each counter's figures with its recount.
The audit holds a page of orders and a batch of counters at a time, whatever the history.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from core.mongo import find_by_ids
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.counters import Shape, Tally
from projections.documents import SalesOrderState
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
from workers.audit_scratch import MARK, Scratch, scratch
from workers.completeness import (
    Hole,
    compare,
    primary_streams,
    read_streams,
    refold,
    unexpected,
)

BATCH = 1_000  # counters copied, and compared, per round trip
# Scratch `_id`: a prefix for the kind of counter, then its key (days sort before SKUs).
SHAPES = {"d:": DAY, "s:": DAY_SKU}


async def audit_sales(
    projection: SalesDailyProjection, side: ReadSide, upto: Position, skip: set[str]
) -> tuple[int, list[Hole]]:
    """Holes in the order states, in the days' totals and in the (day, SKU) counters."""
    async with scratch(side.db, side.clock) as recount:
        newest = await _copy_counters(projection, recount, upto.token)
        checked, holes = await _orders(projection, side, recount, upto, newest, skip)
        holes += await _wrong(recount)
        await recount.touch()  # the recount was whole: nobody dropped it under us
    return checked, holes + await unexpected(side.inspector, projection.orders, UUID)


async def _copy_counters(projection: SalesDailyProjection, recount: Scratch, upto: str) -> str:
    """Copy each counter's figures and bound, max(checkpoint, `_last`); the newest bound."""
    newest = upto
    sides: tuple[tuple[str, AsyncCollection[Any]], ...] = (
        ("d:", projection.days),
        ("s:", projection.day_skus),
    )
    for prefix, collection in sides:
        fields = dict.fromkeys(("_last", *SHAPES[prefix].names), 1)
        batch: list[InsertOne[Any]] = []
        async for doc in collection.find({}, fields).batch_size(BATCH):
            bound = max(upto, doc.pop("_last"))
            newest = max(newest, bound)
            found = {"_id": f"{prefix}{doc.pop('_id')}", "found": doc, "bound": bound}
            batch.append(InsertOne(found))
            if len(batch) == BATCH:
                await _write(recount, batch)
                batch = []
        await _write(recount, batch)
    return newest


async def _orders(
    projection: SalesDailyProjection,
    side: ReadSide,
    recount: Scratch,
    upto: Position,
    newest: str,
    skip: set[str],
) -> tuple[int, list[Hole]]:
    """Refold each order's state, and add its effects to the recount, a page at a time."""
    checked, holes = 0, []
    async for ids in primary_streams(side.inspector, projection, Position.parse(newest)):
        found = await find_by_ids(projection.orders, [str(i) for i in ids])
        tallies: list[tuple[str, Tally]] = []
        for stream in await read_streams(side.store, ids):
            events = [e for e in stream if e.type in ORDER_EVENTS]
            key = str(events[0].stream_id)
            bound = max(upto.token, found[key]["_last"]) if key in found else upto.token
            state, bad = refold(_state, key, events, bound, skip)
            holes += bad + compare(projection.orders, key, state, found.get(key))
            tallies += _tallies(events)
            checked += 1
        await _write(recount, _counts(tallies, upto.token))
    return checked, holes


def _state(state: SalesOrderState | None, event: StoredEvent) -> SalesOrderState:
    return fold_order(state, event)[0]


def _tallies(events: list[StoredEvent]) -> Iterator[tuple[str, Tally]]:
    """Each effect of one order on each counter, by the counter's scratch `_id`."""
    state: SalesOrderState | None = None
    for event in events:
        try:
            state, effect = fold_order(copy.deepcopy(state), event)
        except Exception:  # parked by the projection; reported by the refold
            continue
        if effect is not None:
            yield from (("d:" + t.key, t) for t in day_tallies([effect]))
            yield from (("s:" + t.key, t) for t in sku_tallies([effect]))


def _counts(tallies: list[tuple[str, Tally]], upto: str) -> list[UpdateOne]:
    """The recount's writes: one upsert per counter for the effects up to the checkpoint,
    and one guarded update per later effect, taken only by a counter whose bound reaches it.
    """
    early: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    late: list[UpdateOne] = []
    for key, tally in tallies:
        if tally.token <= upto:
            for name, n in tally.counts.items():
                early[key][f"want.{name}"] += n
        else:
            change = {f"want.{name}": n for name, n in tally.counts.items()}
            late.append(UpdateOne({"_id": key, "bound": {"$gte": tally.token}}, {"$inc": change}))
    upserts = [UpdateOne({"_id": k}, {"$inc": dict(c)}, upsert=True) for k, c in early.items()]
    return upserts + late


async def _write(recount: Scratch, ops: list[InsertOne[Any]] | list[UpdateOne]) -> None:
    """One bulk write into the scratch, after showing it is still in use."""
    await recount.touch()
    if ops:
        await recount.collection.bulk_write(ops, ordered=False)


async def _wrong(recount: Scratch) -> list[Hole]:
    """A hole for each counter document whose figures are not the recounted ones.

    A document missing counts as zeros: an order confirmed then cancelled leaves one, which
    a rebuild makes too, and whether it is there is no figure of the dashboards.
    """
    holes, read = [], 0
    cursor = recount.collection.find({"_id": {"$ne": MARK}}).sort("_id", 1).batch_size(BATCH)
    async for doc in cursor:
        prefix, key = doc["_id"][:2], doc["_id"][2:]
        hole = _hole(SHAPES[prefix], key, doc)
        holes += [hole] if hole else []
        read += 1
        if read % BATCH == 0:  # a long comparison still shows the scratch in use
            await recount.touch()
    return holes


def _hole(shape: Shape, key: str, doc: dict[str, Any]) -> Hole | None:
    want, have = shape.figures([], doc.get("want")), shape.figures([], doc.get("found"))
    if want == have:
        return None
    day, _, sku = key.partition("|")
    where = {"day": day, "sku": sku} if sku else {"day": day}
    return {"kind": "wrong_totals", **where, "expected": want, "found": have}
