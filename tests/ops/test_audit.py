"""The completeness audit reports a hole if and only if there is one, even while workers move."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.values import product_id
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases
from projections.registry import PROJECTIONS, build
from tests.ops.helpers import Db, caught_up
from tests.ops.test_repairs import ALL
from tests.readside.test_fulfilment import place, setup_catalog
from workers.audit_scratch import MARK, PREFIX, STALE
from workers.bootstrap import read_side_over
from workers.completeness import audit_projection
from workers.completeness_sales import audit_sales
from workers.service import SubscriptionService

Auth = Callable[..., dict[str, str]]
SKUS = {"AUA": 80, "AUB": 6}  # AUB runs out: some orders are rejected


async def holes(engine: AsyncEngine, db: Db) -> dict[str, list[dict[str, Any]]]:
    """The holes of every projection that has any."""
    report = {
        name: await audit_projection(name, read_side_over(engine, db)) for name in PROJECTIONS
    }
    return {name: result["holes"] for name, result in report.items() if result["holes"]}


async def audits_while(engine: AsyncEngine, db: Db, busy: asyncio.Task[Any]) -> int:
    """Audit again and again until `busy` is done; every audit must be clean."""
    audits = 0
    while not busy.done() or audits == 0:
        assert await holes(engine, db) == {}
        audits += 1
    await busy
    return audits


async def trade(api: httpx.AsyncClient, auth: Auth, store: PostgresEventStore, db: Db) -> None:
    """Orders, some rejected for want of stock; then cancellations and shipments."""
    rng = random.Random(14)
    for _ in range(8):
        lines = [
            {"AUA": rng.randint(1, 2)} | ({"AUB": 2} if rng.random() < 0.5 else {})
            for _ in range(6)
        ]
        await asyncio.gather(*(place(api, auth(), **line) for line in lines))
        await asyncio.sleep(0.2)  # let the workers and the audits interleave
    await caught_up(store, db, ALL)
    confirmed = [d async for d in db["orders"].find({"status": "confirmed"}, sort=[("_id", 1)])]
    sold: set[str] = set()
    for n, order in enumerate(confirmed):
        # Which orders got stock depends on timing; shipping any order that carries a SKU not
        # sold yet keeps every SKU's sales figures above zero for the tests that edit them.
        ship = n % 2 == 1 or not set(order["skus"]) <= sold
        verb, body = ("ship", {}) if ship else ("cancel", {"reason": "changed mind"})
        sold |= set(order["skus"]) if ship else set()
        response = await api.post(
            f"/api/v1/orders/{order['_id']}/{verb}", json=body, headers=auth()
        )
        assert response.status_code == 200, response.text


@pytest.fixture
async def traded(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
) -> Db:
    """A busy system, audited clean throughout, then caught up."""
    await setup_catalog(api, auth(), SKUS)
    busy = asyncio.create_task(trade(api, auth, pg_store, mongo_db))
    try:
        assert await audits_while(engine, mongo_db, busy) >= 2
    finally:  # a failed audit must not leave the trading running into the next tests
        if not busy.done():
            busy.cancel()
    await caught_up(pg_store, mongo_db, ALL)
    statuses = {d["status"] async for d in mongo_db["orders"].find({})}
    assert {"rejected", "cancelled", "shipped"} <= statuses  # every path was taken
    assert await holes(engine, mongo_db) == {}
    return mongo_db


async def test_a_busy_healthy_system_has_no_hole(traded: Db) -> None:
    rejected = await traded["audit_log"].count_documents({"type": "StockReservationRejected"})
    assert rejected > 0


async def test_a_skipped_middle_event_is_a_hole(traded: Db, engine: AsyncEngine) -> None:
    shipped = await traded["orders"].find_one({"status": "shipped"})
    assert shipped is not None
    await traded["orders"].update_one(
        {"_id": shipped["_id"]}, {"$pull": {"history": {"status": "confirmed"}}}
    )
    product = str(product_id("AUA"))
    await traded["products"].update_one(
        {"_id": product}, {"$inc": {"reserved": 1, "available": -1}}
    )
    found = await holes(engine, traded)
    assert set(found) == {"orders", "products"}
    assert [(h["kind"], h["id"], list(h["found"])) for h in found["orders"]] == [
        ("wrong", shipped["_id"], ["history"])
    ]
    assert [(h["kind"], h["id"]) for h in found["products"]] == [("wrong", product)]


async def test_a_wrong_field_is_a_hole(traded: Db, engine: AsyncEngine) -> None:
    await traded["stock"].update_one({"_id": "AUB"}, {"$set": {"on_hand": 999}})
    found = await holes(engine, traded)
    [hole] = found.pop("stock")
    assert (hole["kind"], hole["id"], hole["found"]) == ("wrong", "AUB", {"on_hand": 999})
    assert found == {}


async def test_a_missing_wrong_or_foreign_audit_entry_is_a_hole(
    traded: Db, engine: AsyncEngine
) -> None:
    log = traded["audit_log"]
    middle = await log.find_one({"type": "StockReserved"})
    edited = await log.find_one({"type": "OrderPlaced"})
    last = await log.find_one({}, sort=[("_id", -1)])
    assert middle is not None and edited is not None and last is not None
    await log.delete_many({"_id": {"$in": [middle["_id"], last["_id"]]}})
    await log.update_one({"_id": edited["_id"]}, {"$set": {"actor": "mallory"}})
    wrong = {"expected": {"actor": edited["actor"]}, "found": {"actor": "mallory"}}
    expected = [
        {"kind": "missing", "id": middle["position"]},
        {"kind": "missing", "id": last["position"]},  # past the last entry left
        {"kind": "wrong", "id": edited["position"], **wrong},
    ]
    found = await holes(engine, traded)
    assert sorted(found.pop("audit_log"), key=repr) == sorted(expected, key=repr)
    assert found == {}
    # Before every event, after every event, and no position at all.
    await log.insert_many([{"_id": 0}, {"_id": 10**9, "type": "Invented"}, {"_id": "x"}])
    found = await holes(engine, traded)
    assert sorted(found.pop("audit_log"), key=repr) == sorted(
        [
            *expected,
            {"kind": "unexpected", "position": 0},
            {"kind": "unexpected", "position": 10**9},
            {"kind": "unexpected", "position": "x"},
        ],
        key=repr,
    )
    assert found == {}


async def test_a_wrong_daily_total_is_a_hole(traded: Db, engine: AsyncEngine) -> None:
    day = await traded["sales_daily"].find_one({})
    assert day is not None
    await traded["sales_daily"].update_one({"_id": day["_id"]}, {"$inc": {"revenue_cents": 100}})
    found = await holes(engine, traded)
    assert [(h["kind"], h["day"]) for h in found.pop("sales_daily")] == [
        ("wrong_totals", day["_id"])
    ]
    assert found == {}


async def test_a_wrong_or_missing_sku_figure_of_a_day_is_a_hole(
    traded: Db, engine: AsyncEngine
) -> None:
    rows = traded["sales_daily_skus"]
    counted = {row["sku"]: row async for row in rows.find({"units": {"$gt": 0}})}
    assert set(counted) == set(SKUS)
    await rows.update_one({"_id": counted["AUA"]["_id"]}, {"$inc": {"units": 1}})
    await rows.delete_one({"_id": counted["AUB"]["_id"]})
    found = await holes(engine, traded)
    aua, aub = counted["AUA"], counted["AUB"]
    assert [(h["kind"], h["day"], h["sku"], h["found"]) for h in found.pop("sales_daily")] == [
        (
            "wrong_totals",
            aua["date"],
            "AUA",
            {"units": aua["units"] + 1, "revenue_cents": aua["revenue_cents"]},
        ),
        ("wrong_totals", aub["date"], "AUB", {"units": 0, "revenue_cents": 0}),
    ]
    assert found == {}


async def test_the_sales_audit_leaves_no_scratch_and_drops_a_crashed_runs(
    traded: Db, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    crashed, running = f"{PREFIX}crashed", f"{PREFIX}running"  # a dead run's, a live run's
    await traded[crashed].insert_one({"_id": MARK, "alive": (now - STALE * 2).timestamp()})
    await traded[running].insert_one({"_id": MARK, "alive": now.timestamp()})
    await traded[crashed].insert_one({"_id": "d:2000-01-01", "want": {"orders": 1}})
    report = await audit_projection("sales_daily", read_side_over(engine, traded))
    assert report["holes"] == [] and report["checked"] > 0
    scratch = [n for n in await traded.list_collection_names() if n.startswith(PREFIX)]
    assert scratch == [running]  # its own dropped, the dead one swept, the live one kept
    await traded.drop_collection(running)


async def test_sales_counters_ahead_of_the_checkpoint_are_audited_up_to_their_own_last(
    traded: Db, engine: AsyncEngine
) -> None:
    """From a checkpoint before every event, each effect counts only up to its counter's `_last`."""
    rows = traded["sales_daily_skus"]
    counted = {row["sku"]: row async for row in rows.find({"units": {"$gt": 0}})}
    await rows.update_one({"_id": counted["AUA"]["_id"]}, {"$inc": {"units": 1}})
    await rows.delete_one({"_id": counted["AUB"]["_id"]})  # not there yet: all of it is lag
    unstarted = {"orders": 0, "revenue_cents": 0, "_last": Position(0, 0).token}
    await traded["sales_daily"].update_one({}, {"$set": unstarted})  # read before its first effect
    _, names = await Aliases(traded).live("sales_daily")
    projection = build("sales_daily", traded, names)
    side = read_side_over(engine, traded)
    _, found = await audit_sales(projection, side, Position(0, 0), set())  # type: ignore[arg-type]
    assert [(h["kind"], h["sku"], h["found"]["units"]) for h in found] == [
        ("wrong_totals", "AUA", counted["AUA"]["units"] + 1)
    ]
