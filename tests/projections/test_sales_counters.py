"""Daily sales per (day, SKU) counter: bounded documents and writes, still counted exactly once."""

from __future__ import annotations

from typing import Any

import bson
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.records import StoredEvent
from projections.counters import Counters
from projections.sales_daily import (
    DAY,
    ORDER_EVENTS,
    SalesDailyProjection,
    day_tallies,
    fold_orders,
)
from tests.projections.conftest import History

Db = AsyncDatabase[dict[str, Any]]


def sales_events(history: History) -> list[StoredEvent]:
    """The events `sales_daily` handles, in commit order."""
    return [e for e in history.events if e.type in ORDER_EVENTS]


async def figures(db: Db) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
    """((orders, revenue cents) of the only day, {sku: (units, revenue cents)})."""
    [day] = [doc async for doc in db["sales_daily"].find({})]
    rows = db["sales_daily_skus"].find({"date": day["date"]})
    skus = {row["sku"]: (row["units"], row["revenue_cents"]) async for row in rows}
    return (day["orders"], day["revenue_cents"]), skus


async def test_the_day_keeps_totals_and_each_sku_its_own_counters(
    mongo_db: Db, history: History
) -> None:
    for sku, price in (("PEN", "1.50"), ("INK", "4.00"), ("PAD", "2.00")):
        await history.product(sku, price)
    first, second = await history.order(("PEN", 2), ("INK", 1)), await history.order(("PEN", 3))
    for order in (first, second):
        await history.confirm(order)
    await SalesDailyProjection(mongo_db).apply(sales_events(history))
    [day] = [doc async for doc in mongo_db["sales_daily"].find({})]
    assert set(day) == {"_id", "date", "orders", "revenue_cents", "revenue", "_last"}
    assert (day["orders"], day["revenue"]) == (2, "11.50")
    rows = {row.pop("_id"): row async for row in mongo_db["sales_daily_skus"].find({})}
    on, (*_, ink_confirmed, pen_confirmed) = day["date"], sales_events(history)
    assert rows == {
        f"{on}|INK": sku_row(on, "INK", 1, 400, ink_confirmed.token),
        f"{on}|PEN": sku_row(on, "PEN", 5, 750, pen_confirmed.token),
    }


def sku_row(day: str, sku: str, units: int, cents: int, last: str) -> dict[str, Any]:
    """A (day, SKU) counter document without its `_id`."""
    return {"date": day, "sku": sku, "units": units, "revenue_cents": cents, "_last": last}


async def test_a_cancellation_after_confirmation_takes_the_counts_back_out(
    mongo_db: Db, history: History
) -> None:
    await history.product("CUP", "3.00")
    await history.product("LID", "1.00")
    kept, cancelled = await history.order(("CUP", 1)), await history.order(("CUP", 2), ("LID", 4))
    sales = SalesDailyProjection(mongo_db)
    for order in (kept, cancelled):
        await history.confirm(order)
    await sales.apply(sales_events(history))
    assert await figures(mongo_db) == ((2, 1300), {"CUP": (3, 900), "LID": (4, 400)})
    await history.cancel(cancelled)
    await sales.apply(sales_events(history)[-1:])
    assert await figures(mongo_db) == ((1, 300), {"CUP": (1, 300), "LID": (0, 0)})


async def test_redeliveries_cut_any_way_count_each_confirmation_once(
    mongo_db: Db, history: History
) -> None:
    """The re-run after a crash may cut its batch elsewhere: old and new effects on one counter."""
    await history.product("TEA", "2.00")
    orders = [await history.order(("TEA", n)) for n in (1, 2, 4)]
    for order in orders:
        await history.confirm(order)
    events = sales_events(history)  # 3 placed, then 3 confirmed
    sales = SalesDailyProjection(mongo_db)
    await sales.apply(events[:3])  # the placements, checkpointed
    _, effects = fold_orders({}, events[:5])
    await sales._apply_effects(effects)  # two confirmations counted; the worker dies
    await sales.apply(events[3:])  # redelivered with the third confirmation in the batch
    await sales.apply(events)  # and the whole history again
    assert await figures(mongo_db) == ((3, 1400), {"TEA": (7, 1400)})


async def test_a_crash_between_the_day_and_the_sku_counters_counts_once(
    mongo_db: Db, history: History
) -> None:
    await history.product("BAG", "5.00")
    await history.product("BOX", "1.00")
    order = await history.order(("BAG", 1), ("BOX", 2))
    await history.confirm(order)
    placed, confirmed = sales_events(history)
    sales = SalesDailyProjection(mongo_db)
    await sales.apply([placed])
    _, effects = fold_orders({}, [placed, confirmed])
    await Counters(sales.days, DAY).add(day_tallies(effects))  # the SKU counters never written
    await sales.apply([confirmed])
    assert await figures(mongo_db) == ((1, 700), {"BAG": (1, 500), "BOX": (2, 200)})


class Updates(monitoring.CommandListener):
    """The update statements the client sends, by collection."""

    def __init__(self) -> None:
        self.statements: dict[str, list[dict[str, Any]]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Keep each update's statements."""
        if event.command_name == "update":
            collection = event.command["update"]
            self.statements.setdefault(collection, []).extend(event.command["updates"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to do."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to do."""


async def test_a_batch_writes_only_the_counters_it_touches_whatever_the_day_holds(
    mongodb_url: str, history: History
) -> None:
    updates = Updates()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_url, event_listeners=[updates]
    )
    db = client[f"bounded_{id(updates):x}"]
    try:
        skus = [f"WIDE-{n:03d}" for n in range(300)]
        for sku in skus:
            await history.product(sku, "1.00")
        wide = await history.order(*((sku, 1) for sku in skus[:100]))
        more = [await history.order(*((sku, 1) for sku in skus[n : n + 100])) for n in (100, 200)]
        for order in (wide, *more):
            await history.confirm(order)
        one = await history.order(("WIDE-007", 2))
        await history.confirm(one)
        events = sales_events(history)
        sales = SalesDailyProjection(db)
        await sales.apply(events[:-1])
        updates.statements.clear()
        await sales.apply(events[-1:])
        day, sku = updates.statements["sales_daily"], updates.statements["sales_daily_skus"]
        assert len(day) == len(sku) == 1  # one $inc each, however many SKUs the day has
        assert sku[0]["u"]["$inc"] == {"units": 2, "revenue_cents": 200}
        largest = max([len(bson.encode(d)) async for d in db["sales_daily"].find({})])
        assert largest < 200 and await db["sales_daily_skus"].count_documents({}) == 300
    finally:
        await client.drop_database(db.name)
        await client.close()
