"""GET /api/v1/orders: by customer, status and placing time, newest first; one with history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx

from tests.query.helpers import (
    ORDERS,
    Auth,
    Json,
    command,
    ids,
    place,
    read,
    register,
    settle_orders,
    tag,
)


@dataclass
class Seed:
    """Three orders of two customers: confirmed, rejected, then confirmed and cancelled."""

    alice: str
    bob: str
    confirmed: str
    rejected: str
    cancelled: str
    token: str
    orders: dict[str, Json]  # by id, as the read model has them


async def seed_orders(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> Seed:
    sku = f"ORD-{tag()}"
    await register(api, auth(), sku, "Widget", "3.00", f"orders-{tag()}", 5)
    alice, bob = str(uuid4()), str(uuid4())
    confirmed, _ = await place(api, auth(), alice, **{sku: 2})
    rejected, _ = await place(api, auth(), bob, **{sku: 10})  # 3 left: not enough
    cancelled, token = await place(api, auth(), alice, **{sku: 1})
    token = await settle_orders(query, reader, token, [confirmed, rejected, cancelled])
    cancel = await command(
        api, auth(), f"{ORDERS}/{cancelled}/cancel", {"reason": "changed my mind"}, 200
    )
    token = cancel.headers["X-Position"]
    everything = await read(query, reader, ORDERS, token)
    orders = {item["id"]: item for item in everything["items"]}
    return Seed(alice, bob, confirmed, rejected, cancelled, token, orders)


async def test_orders_by_customer_and_status_newest_first(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_orders(api, query, auth, reader)

    async def listed(**params: Any) -> list[str]:
        body = await read(query, reader, ORDERS, s.token, **params)
        assert body["total"] == len(body["items"])
        return ids(body)

    assert await listed() == [s.cancelled, s.rejected, s.confirmed]
    assert await listed(customer_id=s.alice) == [s.cancelled, s.confirmed]
    assert await listed(customer_id=s.bob) == [s.rejected]
    assert await listed(customer_id=s.alice.upper()) == [s.cancelled, s.confirmed]
    assert await listed(customer_id=str(uuid4())) == []
    assert await listed(status="confirmed") == [s.confirmed]
    assert await listed(status="rejected") == [s.rejected]
    assert await listed(status="cancelled") == [s.cancelled]
    assert await listed(status="pending") == []
    assert await listed(status="shipped") == []
    assert await listed(customer_id=s.alice, status="cancelled") == [s.cancelled]
    assert await listed(customer_id=s.bob, status="confirmed") == []

    page = await read(query, reader, ORDERS, s.token, page=2, size=2)
    assert (ids(page), page["total"], page["page"], page["size"]) == ([s.confirmed], 3, 2, 2)
    past = await read(query, reader, ORDERS, s.token, page=3, size=2)
    assert (past["items"], past["total"]) == ([], 3)


async def test_orders_by_placing_time_with_inclusive_bounds(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_orders(api, query, auth, reader)
    first, middle, last = (s.orders[i]["placed_at"] for i in (s.confirmed, s.rejected, s.cancelled))
    assert first < middle < last, (first, middle, last)

    async def listed(**params: Any) -> list[str]:
        return ids(await read(query, reader, ORDERS, s.token, **params))

    assert await listed(placed_from=middle) == [s.cancelled, s.rejected]
    assert await listed(placed_to=middle) == [s.rejected, s.confirmed]
    assert await listed(placed_from=middle, placed_to=middle) == [s.rejected]
    assert await listed(placed_from=first, placed_to=last) == [s.cancelled, s.rejected, s.confirmed]
    assert await listed(placed_from=last, placed_to=first) == []
    assert await listed(placed_from="2000-01-01T00:00:00Z", placed_to="2000-12-31") == []
    assert await listed(placed_from="2000-01-01", customer_id=s.bob) == [s.rejected]
    # A naive time is taken as UTC.
    naive_middle = middle.replace("Z", "").replace("+00:00", "")
    assert await listed(placed_from=naive_middle) == [s.cancelled, s.rejected]


async def test_one_order_with_its_status_history(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_orders(api, query, auth, reader)
    order = await read(query, reader, f"{ORDERS}/{s.cancelled}", s.token)
    assert order == s.orders[s.cancelled]
    assert (order["id"], order["customer_id"], order["status"]) == (
        s.cancelled,
        s.alice,
        "cancelled",
    )
    assert order["total"] == "3.00" and order["lines"][0]["quantity"] == 1
    assert order["lines"][0]["unit_price"] == "3.00"
    history = order["history"]
    assert [h["status"] for h in history] == ["pending", "confirmed", "cancelled"]
    assert history[-1]["reason"] == "changed my mind" and order["reason"] == "changed my mind"
    positions = [h["position"] for h in history]
    assert positions == sorted(set(positions)) and positions[-1] == s.token
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert history[0]["at"] == order["placed_at"]

    rejected = await read(query, reader, f"{ORDERS}/{s.rejected}", s.token)
    assert [h["status"] for h in rejected["history"]] == ["pending", "rejected"]
    assert "insufficient stock" in rejected["reason"]
    confirmed = await read(query, reader, f"{ORDERS}/{s.confirmed}", s.token)
    assert [h["status"] for h in confirmed["history"]] == ["pending", "confirmed"]
    assert confirmed["total"] == "6.00"

    missing = await read(query, reader, f"{ORDERS}/{uuid4()}", expect=404)
    assert "not found" in str(missing["detail"])


async def test_bad_order_queries_are_422(query: httpx.AsyncClient, reader: dict[str, str]) -> None:
    for path in (f"{ORDERS}/not-a-uuid", f"{ORDERS}/123", f"{ORDERS}/{uuid4()}0"):
        response = await query.get(path, headers=reader)
        assert response.status_code == 422, (path, response.text)
    for params in (
        {"customer_id": "alice"},
        {"customer_id": '{"$ne": null}'},
        {"customer_id": "00000000-0000-0000-0000-00000000000z"},
        {"status": "lost"},
        {"status": '{"$ne": "x"}'},
        {"placed_from": "yesterday"},
        {"placed_to": "2024-13-01"},
        {"placed_from": "2024-02-30T00:00:00Z"},
        {"placed_to": '{"$gt": ""}'},
        {"size": 201},
        {"page": 0},
    ):
        response = await query.get(ORDERS, params=params, headers=reader)
        assert response.status_code == 422, (params, response.text)
        assert "detail" in response.json()
