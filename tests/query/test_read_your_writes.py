"""Read-your-writes over HTTP: a command's token as X-Min-Position, no sleeps."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import httpx

Auth = Callable[..., dict[str, str]]


async def test_a_write_is_visible_when_read_with_its_token(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    body = {"sku": "RYW-1", "name": "Fresh", "price": "3.00", "category": "ryw"}
    written = await api.post("/api/v1/products", json=body, headers=auth())
    token = written.headers["X-Position"]
    read = await query.get(
        "/api/v1/products/by-sku/RYW-1", headers=reader | {"X-Min-Position": token}
    )
    assert read.status_code == 200, read.text
    assert read.json()["name"] == "Fresh"
    assert read.headers["X-Read-Position"] >= token

    renamed = await api.post(
        f"/api/v1/products/{written.json()['id']}/rename", json={"name": "Renamed"}, headers=auth()
    )
    again = await query.get(
        f"/api/v1/products/{written.json()['id']}",
        headers=reader | {"X-Min-Position": renamed.headers["X-Position"]},
    )
    assert again.json()["name"] == "Renamed" and again.json()["version"] == 2


async def test_an_order_placed_then_read_through_the_orders_route(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    await api.post(
        "/api/v1/products",
        json={"sku": "RYW-2", "name": "x", "price": "1.50", "category": "ryw"},
        headers=auth(),
    )
    customer = str(uuid4())
    placed = await api.post(
        "/api/v1/orders",
        json={"customer_id": customer, "lines": [{"sku": "RYW-2", "quantity": 2}]},
        headers=auth(),
    )
    token = placed.headers["X-Position"]
    listed = await query.get(
        "/api/v1/orders",
        params={"customer_id": customer},
        headers=reader | {"X-Min-Position": token},
    )
    assert listed.status_code == 200
    [order] = listed.json()["items"]
    assert order["id"] == placed.json()["id"] and order["total"] == "3.00"


async def test_a_token_the_projections_never_reach_is_a_503_with_retry_after(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    future = "f" * 32
    response = await query.get("/api/v1/stock", headers=reader | {"X-Min-Position": future})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


async def test_a_malformed_token_is_a_422(query: httpx.AsyncClient, reader: dict[str, str]) -> None:
    for bad in ("abc", "g" * 32, "{'$gt': ''}"):
        response = await query.get("/api/v1/products", headers=reader | {"X-Min-Position": bad})
        assert response.status_code == 422, bad


async def test_every_answer_carries_x_read_position(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    for path in ("/api/v1/products", "/api/v1/audit", "/api/v1/dashboards/order-status"):
        response = await query.get(path, headers=reader)
        assert response.status_code == 200
        assert "X-Read-Position" in response.headers
