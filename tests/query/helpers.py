"""Helpers of the query API tests: write through the command API, read your writes, no sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import uuid4

import httpx

Auth = Callable[..., dict[str, str]]
Json = dict[str, Any]

PRODUCTS = "/api/v1/products"
STOCK = "/api/v1/stock"
ORDERS = "/api/v1/orders"
AUDIT = "/api/v1/audit"
SALES_DAILY = "/api/v1/dashboards/sales-daily"
TOP_PRODUCTS = "/api/v1/dashboards/top-products"
ORDER_STATUS = "/api/v1/dashboards/order-status"


def tag() -> str:
    """A fragment no other test uses (SKUs, categories, subjects)."""
    return uuid4().hex[:8].upper()


def successor(token: str) -> str:
    """The smallest position token after `token` (waiting for it waits for the next event)."""
    return f"{int(token, 16) + 1:032x}"


async def command(
    api: httpx.AsyncClient, headers: dict[str, str], path: str, body: Json, status: int = 0
) -> httpx.Response:
    """POST a command; it must succeed (with `status` when given)."""
    response = await api.post(path, json=body, headers=headers)
    assert response.status_code in ((status,) if status else (200, 201)), response.text
    return response


async def register(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    sku: str,
    name: str,
    price: str,
    category: str,
    stock: int = 0,
) -> tuple[str, str]:
    """Register a product (and receive `stock` of it); (product id, last X-Position)."""
    body = {"sku": sku, "name": name, "price": price, "category": category}
    response = await command(api, headers, PRODUCTS, body, 201)
    token = response.headers["X-Position"]
    if stock:
        received = await command(api, headers, f"{STOCK}/{sku}/receive", {"quantity": stock})
        token = received.headers["X-Position"]
    return str(response.json()["id"]), token


async def place(
    api: httpx.AsyncClient, headers: dict[str, str], customer: str, **lines: int
) -> tuple[str, str]:
    """Place an order (keyword = SKU, value = quantity); (order id, X-Position)."""
    body = {"customer_id": customer, "lines": [{"sku": s, "quantity": q} for s, q in lines.items()]}
    response = await command(api, headers, ORDERS, body, 201)
    return str(response.json()["id"]), response.headers["X-Position"]


async def read(
    query: httpx.AsyncClient,
    headers: dict[str, str],
    path: str,
    token: str | None = None,
    expect: int = 200,
    **params: Any,
) -> Json:
    """GET a query route (waiting for `token` when given); the JSON body."""
    extra = {"X-Min-Position": token} if token else {}
    response = await query.get(path, params=params, headers=headers | extra)
    assert response.status_code == expect, f"{path} {params}: {response.text}"
    assert "X-Read-Position" in response.headers or expect >= 400
    body: Json = response.json()
    return body


async def settle_orders(
    query: httpx.AsyncClient, headers: dict[str, str], token: str, order_ids: Iterable[str]
) -> str:
    """Wait until fulfilment has decided every order (none pending); a position past every decision.

    Each round waits (X-Min-Position) for the orders projection to pass one more event, so
    this never sleeps: an order still pending means its decision is yet to be projected.
    """
    position = token
    for order_id in order_ids:
        for _ in range(200):
            response = await query.get(
                f"{ORDERS}/{order_id}", headers=headers | {"X-Min-Position": position}
            )
            assert response.status_code == 200, response.text
            position = max(position, response.headers["X-Read-Position"])
            order = response.json()
            if order["status"] != "pending":
                # X-Read-Position is a lower bound (the checkpoint may trail the document); the
                # decision's own position is what later reads (its reservations) must wait for.
                position = max(position, order["history"][-1]["position"])
                break
            position = successor(response.headers["X-Read-Position"])
        else:
            raise AssertionError(f"order {order_id} was never decided")
    return position


def ids(body: Json, field: str = "id") -> list[Any]:
    """The `field` of every item of a list answer."""
    return [item[field] for item in body["items"]]
