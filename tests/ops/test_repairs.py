"""Replay one stream, the completeness audit, status, retry-parked: through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.postgres import PostgresEventStore
from tests.ops.conftest import Cli
from tests.ops.helpers import Db, caught_up
from tests.readside.test_fulfilment import place, setup_catalog
from tests.readside.test_reliability import insert_poison
from tests.support.servers import asgi_client
from workers.service import SubscriptionService

Auth = Callable[..., dict[str, str]]
ALL = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]


async def confirmed_orders(
    api: httpx.AsyncClient, auth: Auth, store: PostgresEventStore, db: Db
) -> list[str]:
    """Three confirmed orders of 2 x 3.00, projected."""
    await setup_catalog(api, auth(), {"RPL": 10})
    await api.post(
        "/api/v1/products/" + await _product_id(db, store, "RPL") + "/reprice",
        json={"price": "3.00"},
        headers=auth(),
    )
    orders = [await place(api, auth(), RPL=2) for _ in range(3)]
    await caught_up(store, db, ALL)
    return orders


async def _product_id(db: Db, store: PostgresEventStore, sku: str) -> str:
    from domain.values import product_id

    return str(product_id(sku))


async def sales(db: Db) -> tuple[int, str]:
    """(orders, revenue) of the only sales day."""
    [day] = [d async for d in db["sales_daily"].find({})]
    return day["orders"], day["revenue"]


async def test_replaying_a_stream_repairs_its_views_and_counts_nothing_twice(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    cli: Cli,
) -> None:
    orders = await confirmed_orders(api, auth, pg_store, mongo_db)
    before_sales = await sales(mongo_db)
    assert before_sales == (3, "18.00")
    await mongo_db["orders"].delete_one({"_id": orders[0]})
    await mongo_db["audit_log"].delete_many({"stream_id": orders[0]})

    replayed = await cli("replay", "--stream", orders[0])
    assert replayed.returncode == 0, replayed.stderr
    assert "orders: 1 document(s) rewritten" in replayed.stdout
    repaired = await mongo_db["orders"].find_one({"_id": orders[0]})
    assert repaired is not None and repaired["status"] == "confirmed"
    assert await mongo_db["audit_log"].count_documents({"stream_id": orders[0]}) == 2
    assert await sales(mongo_db) == before_sales  # replayed, not counted again
    assert (await cli("replay", "--stream", orders[1])).returncode == 0
    assert await sales(mongo_db) == before_sales


async def test_audit_reports_a_deleted_document_as_a_hole(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    cli: Cli,
) -> None:
    orders = await confirmed_orders(api, auth, pg_store, mongo_db)
    clean = await cli("audit", "--all")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    await mongo_db["orders"].delete_one({"_id": orders[1]})
    await mongo_db["audit_log"].delete_one({"stream_id": orders[2], "type": "OrderConfirmed"})

    holed = await cli("audit", "--all", "--json")
    assert holed.returncode == 1, holed.stderr[-3000:]
    report = json.loads(holed.stdout)
    [missing] = report["orders"]["holes"]
    assert (missing["kind"], missing["id"]) == ("missing", orders[1])
    assert [h["kind"] for h in report["audit_log"]["holes"]] == ["missing"]
    assert report["products"]["holes"] == report["sales_daily"]["holes"] == []
    assert (await cli("replay", "--stream", orders[1])).returncode == 0
    assert (await cli("audit", "orders")).returncode == 0


async def test_a_parked_event_in_status_then_replay_and_retry_parked_repair_it(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    engine: AsyncEngine,
    mongo_db: Db,
    cli: Cli,
) -> None:
    await setup_catalog(api, auth(), {"ST1": 1})
    product = await _product_id(mongo_db, pg_store, "ST1")
    await caught_up(pg_store, mongo_db, ALL)
    await mongo_db["products"].delete_one({"_id": product})  # a damaged view
    renamed = await api.post(
        f"/api/v1/products/{product}/rename", json={"name": "New"}, headers=auth()
    )
    assert renamed.status_code == 200
    await caught_up(pg_store, mongo_db, ALL)

    status = await cli("status", "--json")
    assert status.returncode == 0, status.stderr
    report: dict[str, Any] = json.loads(status.stdout)
    products = report["subscribers"]["products"]
    assert products["parked"] == 1 and "ProductRenamed" in products["last_error"]
    assert products["lag_events"] == 0 and products["owner"]["worker"]
    assert report["subscribers"]["audit_log"]["parked"] == 0
    assert report["store"]["head"] == products["token"]
    assert (await cli("audit", "products")).returncode == 1  # a parked event is a hole

    # The parked rename's document is refolded from every event feeding it, not patched: the
    # damaged view comes back whole, registration included.
    fixed = await cli("retry-parked", "products")
    assert fixed.returncode == 0 and "1 of 1" in fixed.stdout, fixed.stdout + fixed.stderr
    doc = await mongo_db["products"].find_one({"_id": product})
    assert doc is not None and doc["name"] == "New" and doc["sku"] == "ST1"
    assert (await cli("audit", "products")).returncode == 0
    after = json.loads((await cli("status", "--json")).stdout)["subscribers"]["products"]
    assert after["parked"] == 0 and after["last_error"] is None

    ghost = await insert_poison(engine)  # a rename of a product never registered
    await caught_up(pg_store, mongo_db, ALL)
    still = await cli("retry-parked", "products")
    assert still.returncode == 1 and "still failing" in still.stdout and ghost
    assert await mongo_db["parked_events"].count_documents({"stream_id": ghost}) == 1


async def test_the_command_api_serves_status_and_lag_metrics(
    api: httpx.AsyncClient,
    admin: dict[str, str],
    auth: Auth,
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    read_settings: Any,
) -> None:
    from command_api.app import create_app

    app = create_app(read_settings)
    async with asgi_client(app, "http://ops") as ops:
        await setup_catalog(ops, auth(), {"MET": 3})
        await caught_up(pg_store, mongo_db, ALL)
        status = await ops.get("/api/v1/ops/status", headers=admin)
        metrics = await ops.get("/metrics")
        forbidden = await ops.get("/api/v1/ops/status", headers=auth())
    assert status.status_code == 200 and forbidden.status_code == 403
    assert status.json()["subscribers"]["products"]["lag_events"] == 0
    assert 'ordertrail_projection_lag_events{projection="products"} 0.0' in metrics.text
    assert 'ordertrail_projection_lag_seconds{projection="orders"}' in metrics.text
    assert "ordertrail_parked_events" in metrics.text
