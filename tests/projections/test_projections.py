"""Projections: given events, the documents; the same batch twice changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from eventstore.records import StoredEvent
from projections.registry import COLLECTIONS, PROJECTIONS, build
from tests.projections.conftest import History, Sent

Db = AsyncDatabase[dict[str, Any]]


async def project(db: Db, name: str, events: Sequence[StoredEvent]) -> None:
    """Apply the events a projection handles."""
    projection = build(name, db)
    await projection.apply([e for e in events if e.type in projection.handles])


async def snapshot(db: Db, name: str) -> dict[str, list[dict[str, Any]]]:
    """Every document of a projection, by collection."""
    return {c: [d async for d in db[c].find({}).sort("_id", 1)] for c in COLLECTIONS[name]}


async def test_products_fold_catalog_and_stock(mongo_db: Db, history: History) -> None:
    mug = await history.product("MUG-1", "9.50")
    await history.receive("MUG-1", 10)
    order = await history.order(("MUG-1", 3))
    await history.reserve(order, "MUG-1", 3)
    await history.rename("MUG-1", "Big mug")
    await project(mongo_db, "products", history.events)
    doc = await mongo_db["products"].find_one({"_id": str(mug)})
    assert doc is not None
    expected = {"sku": "MUG-1", "name": "Big mug", "price": "9.50", "price_cents": 950}
    assert {k: doc[k] for k in expected} == expected
    assert (doc["on_hand"], doc["reserved"], doc["available"]) == (10, 3, 7)
    assert (doc["status"], doc["version"], doc["id"]) == ("active", 2, str(mug))


async def test_stock_and_orders_follow_a_fulfilled_order(mongo_db: Db, history: History) -> None:
    await history.product("TEA-1", "4.00")
    await history.receive("TEA-1", 5)
    order = await history.order(("TEA-1", 2))
    await history.reserve(order, "TEA-1", 2)
    await history.confirm(order)
    await history.ship_stock(order, "TEA-1")
    for name in ("stock", "orders"):
        await project(mongo_db, name, history.events)
    stock = await mongo_db["stock"].find_one({"_id": "TEA-1"})
    assert stock is not None and (stock["on_hand"], stock["reserved"], stock["available"]) == (
        3,
        0,
        3,
    )
    doc = await mongo_db["orders"].find_one({"_id": str(order)})
    assert doc is not None
    assert doc["status"] == "confirmed" and doc["total"] == "8.00"
    assert [h["status"] for h in doc["history"]] == ["pending", "confirmed"]
    assert doc["lines"] == [{"sku": "TEA-1", "quantity": 2, "unit_price": "4.00"}]


async def test_sales_count_confirmed_orders_and_take_back_cancellations(
    mongo_db: Db, history: History
) -> None:
    await history.product("A", "2.50")
    await history.product("B", "1.00")
    kept, cancelled, rejected = (
        await history.order(("A", 2), ("B", 1)),
        await history.order(("A", 4)),
        await history.order(("B", 9)),
    )
    for order in (kept, cancelled):
        await history.confirm(order)
    await history.cancel(cancelled)
    await history.reject(rejected, "no stock")
    await project(mongo_db, "sales_daily", history.events)
    [day] = [d async for d in mongo_db["sales_daily"].find({})]
    assert (day["orders"], day["revenue"], day["revenue_cents"]) == (1, "6.00", 600)
    rows = mongo_db["sales_daily_skus"].find({}, {"_id": 0, "_last": 0}).sort("sku", 1)
    assert [row async for row in rows] == [
        {"date": day["date"], "sku": "A", "units": 2, "revenue_cents": 500},
        {"date": day["date"], "sku": "B", "units": 1, "revenue_cents": 100},
    ]


async def test_audit_log_keeps_every_event_with_its_metadata(
    mongo_db: Db, history: History
) -> None:
    await history.product("C", "3.00")
    await history.receive("C", 1)
    await project(mongo_db, "audit_log", history.events)
    entries = [d async for d in mongo_db["audit_log"].find({}).sort("_id", -1)]
    assert [e["type"] for e in entries] == ["StockReceived", "StockItemOpened", "ProductRegistered"]
    assert entries[0]["actor"] == "tester" and entries[0]["correlation_id"] == "c-1"
    assert entries[0]["position"] == history.events[-1].token


async def test_every_projection_applies_a_batch_once_even_when_given_twice(
    mongo_db: Db, history: History
) -> None:
    await history.product("D", "5.00")
    await history.receive("D", 10)
    orders = [await history.order(("D", 1)) for _ in range(3)]
    for order in orders:
        await history.reserve(order, "D", 1)
        await history.confirm(order)
    await history.cancel(orders[0])
    half = len(history.events) // 2
    for name in PROJECTIONS:
        await project(mongo_db, name, history.events[:half])
        await project(mongo_db, name, history.events)  # a redelivery overlapping the first
        once = await snapshot(mongo_db, name)
        await project(mongo_db, name, history.events)
        await project(mongo_db, name, history.events[half - 2 :])
        assert await snapshot(mongo_db, name) == once, name
    day = await mongo_db["sales_daily"].find_one({})
    assert day is not None and day["orders"] == 2 and day["revenue"] == "10.00"
    assert await mongo_db["audit_log"].count_documents({}) == len(history.events)


async def test_new_documents_are_inserted_unread_and_a_redelivery_is_still_applied_once(
    watched: tuple[Db, Sent], history: History
) -> None:
    db, sent = watched
    for n in range(5):
        await history.product(f"NEW-{n}", "4.00")
    projection = build("products", db)
    await projection.apply(history.events)
    assert sent.commands["find"] == 0  # registrations create their documents: nothing to read
    once = await snapshot(db, "products")
    await history.rename("NEW-0", "Renamed")
    await projection.apply(history.events)  # the five again, and a rename: read, fold once
    assert sent.commands["find"] >= 1
    docs = {d["sku"]: d for d in (await snapshot(db, "products"))["products"]}
    assert docs["NEW-0"]["name"] == "Renamed" and len(docs) == 5
    assert [d for d in once["products"] if d["sku"] != "NEW-0"] == [
        d for d in (await snapshot(db, "products"))["products"] if d["sku"] != "NEW-0"
    ]
