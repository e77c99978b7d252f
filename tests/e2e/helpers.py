"""Small helpers shared by the command API's HTTP tests."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import sqlalchemy as sa

from eventstore.postgres import PostgresEventStore

PRODUCTS = "/api/v1/products"
ORDERS = "/api/v1/orders"


def new_sku() -> str:
    """A SKU no other test uses."""
    return f"SKU-{uuid4().hex[:10].upper()}"


def stream_url(stream_id: str | UUID) -> str:
    """The ops route listing a stream's stored events."""
    return f"/api/v1/ops/streams/{stream_id}/events"


def stock_url(sku: str, action: str) -> str:
    """A stock command route."""
    return f"/api/v1/stock/{sku}/{action}"


def assert_command_response(
    response: httpx.Response, status: int, version: int, stream_id: str | UUID | None = None
) -> dict[str, Any]:
    """Check the DESIGN §6 shape of a successful command and return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"id", "version", "position"}
    UUID(body["id"])
    if stream_id is not None:
        assert body["id"] == str(stream_id)
    assert body["version"] == version
    assert isinstance(body["position"], str) and body["position"]
    assert response.headers["ETag"] == f'"{version}"'
    assert response.headers["X-Position"] == body["position"]
    return body


async def register(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    sku: str | None = None,
    price: str = "9.50",
    **fields: Any,
) -> dict[str, Any]:
    """Register a product (201 expected) and return the response body."""
    payload = {"sku": sku or new_sku(), "name": "Mug", "price": price, "category": "kitchen"}
    payload.update(fields)
    response = await api.post(PRODUCTS, json=payload, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def receive(
    api: httpx.AsyncClient, headers: dict[str, str], sku: str, quantity: int = 10
) -> httpx.Response:
    """Receive stock for a SKU."""
    return await api.post(stock_url(sku, "receive"), json={"quantity": quantity}, headers=headers)


async def place_order(
    api: httpx.AsyncClient, headers: dict[str, str], *lines: tuple[str, int]
) -> httpx.Response:
    """Place an order for a new customer."""
    payload = {
        "customer_id": str(uuid4()),
        "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines],
    }
    return await api.post(ORDERS, json=payload, headers=headers)


async def events_of(
    api: httpx.AsyncClient, admin: dict[str, str], stream_id: str | UUID
) -> list[dict[str, Any]]:
    """The stream's stored events as the ops route lists them ([] when the stream is empty)."""
    response = await api.get(stream_url(stream_id), headers=admin)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def types_of(
    api: httpx.AsyncClient, admin: dict[str, str], stream_id: str | UUID
) -> list[str]:
    """The type names of a stream's stored events."""
    return [event["type"] for event in await events_of(api, admin, stream_id)]


async def count_all(store: PostgresEventStore) -> int:
    """How many events the whole store holds (after `clean_db`: this test's events).

    Counted in SQL, not with read_all: readers stay below the cluster-wide watermark, which
    any other transaction on the server may hold back for a moment.
    """
    async with store.engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM events"))).scalar_one())
