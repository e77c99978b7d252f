"""Commands through the API, then the workers: read models, audit log, order fulfilment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from domain.values import product_id

Db = AsyncDatabase[dict[str, Any]]
Auth = Callable[..., dict[str, str]]
Settle = Callable[[], Awaitable[int]]


async def setup_catalog(
    api: httpx.AsyncClient, headers: dict[str, str], stock: dict[str, int]
) -> None:
    """Register each SKU at 2.00 and receive its stock."""
    for sku, quantity in stock.items():
        body = {"sku": sku, "name": f"Item {sku}", "price": "2.00", "category": "test"}
        assert (await api.post("/api/v1/products", json=body, headers=headers)).status_code == 201
        if quantity:
            url = f"/api/v1/stock/{sku}/receive"
            response = await api.post(url, json={"quantity": quantity}, headers=headers)
            assert response.status_code == 201


async def place(api: httpx.AsyncClient, headers: dict[str, str], **lines: int) -> str:
    """Place an order; its id."""
    body = {
        "customer_id": str(uuid4()),
        "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
    }
    response = await api.post("/api/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def stock_of(db: Db, sku: str) -> tuple[int, int, int]:
    """(on hand, reserved, available) in both the stock and the products read models."""
    stock = await db["stock"].find_one({"_id": sku})
    product = await db["products"].find_one({"_id": str(product_id(sku))})
    assert stock is not None and product is not None
    figures = (stock["on_hand"], stock["reserved"], stock["available"])
    assert (product["on_hand"], product["reserved"], product["available"]) == figures
    return figures


async def test_an_order_with_enough_stock_is_confirmed_and_reserved(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, settle: Settle
) -> None:
    await setup_catalog(api, auth(), {"PEN": 10, "INK": 4})
    order_id = await place(api, auth(sub="carol"), PEN=3, INK=4)
    await settle()
    order = await mongo_db["orders"].find_one({"_id": order_id})
    assert order is not None and order["status"] == "confirmed"
    assert [h["status"] for h in order["history"]] == ["pending", "confirmed"]
    assert await stock_of(mongo_db, "PEN") == (10, 3, 7)
    assert await stock_of(mongo_db, "INK") == (4, 4, 0)
    day = await mongo_db["sales_daily"].find_one({})
    assert day is not None and (day["orders"], day["revenue"]) == (1, "14.00")
    audit = [d async for d in mongo_db["audit_log"].find({"stream_id": order_id}).sort("_id", 1)]
    assert [(d["type"], d["actor"]) for d in audit] == [
        ("OrderPlaced", "carol"),
        ("OrderConfirmed", "fulfilment"),
    ]
    placed_event_id = audit[0]["event_id"]
    assert audit[1]["causation_id"] == placed_event_id
    assert audit[1]["correlation_id"] == audit[0]["correlation_id"]


async def test_an_order_without_enough_stock_is_rejected_and_releases_everything(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, settle: Settle
) -> None:
    await setup_catalog(api, auth(), {"CUP": 5, "LID": 1, "NEW": 0})
    short = await place(api, auth(), CUP=2, LID=3)
    unstocked = await place(api, auth(), CUP=1, NEW=1)
    await settle()
    for order_id, missing in ((short, "LID"), (unstocked, "NEW")):
        order = await mongo_db["orders"].find_one({"_id": order_id})
        assert order is not None and order["status"] == "rejected"
        assert missing in order["reason"]
    assert await stock_of(mongo_db, "CUP") == (5, 0, 5)
    assert await stock_of(mongo_db, "LID") == (1, 0, 1)
    assert await mongo_db["sales_daily"].count_documents({}) == 0


async def test_cancel_releases_and_ship_ships(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, settle: Settle
) -> None:
    await setup_catalog(api, auth(), {"BOX": 10})
    kept, cancelled = await place(api, auth(), BOX=4), await place(api, auth(), BOX=3)
    await settle()
    assert await stock_of(mongo_db, "BOX") == (10, 7, 3)
    cancel = await api.post(
        f"/api/v1/orders/{cancelled}/cancel", json={"reason": "no"}, headers=auth()
    )
    ship = await api.post(f"/api/v1/orders/{kept}/ship", json={}, headers=auth())
    assert (cancel.status_code, ship.status_code) == (200, 200)
    await settle()
    assert await stock_of(mongo_db, "BOX") == (6, 0, 6)
    statuses = {d["_id"]: d["status"] async for d in mongo_db["orders"].find({})}
    assert statuses == {kept: "shipped", cancelled: "cancelled"}
    day = await mongo_db["sales_daily"].find_one({})
    assert day is not None and (day["orders"], day["revenue"]) == (1, "8.00")


async def test_settling_again_changes_nothing(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, settle: Settle
) -> None:
    await setup_catalog(api, auth(), {"JAR": 3})
    await place(api, auth(), JAR=2)
    assert await settle() > 0
    assert await settle() == 0
