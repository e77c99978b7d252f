"""One past each domain limit over HTTP: 422 for a field's value, 409 for a total; nothing appended.

The largest accepted values themselves are shown projected and readable end to end in
tests/readside/test_limits_projected.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest

from eventstore.postgres import PostgresEventStore
from tests.e2e.helpers import ORDERS, PRODUCTS, count_all, new_sku, register, stock_url

Auth = Callable[..., dict[str, str]]
MAX_ON_HAND = 1_000_000_000_000


@dataclass
class Catalog:
    """A product at the largest price with the most stock, and a one-cent product."""

    dear: str
    dear_id: str
    penny: str


@pytest.fixture
async def catalog(api: httpx.AsyncClient, auth: Auth, clean_db: None) -> Catalog:
    dear, penny = new_sku(), new_sku()
    product = await register(api, auth(), dear, price="1000000.00")
    await register(api, auth(), penny, price="0.01")
    body = {"quantity": MAX_ON_HAND}
    response = await api.post(stock_url(dear, "receive"), json=body, headers=auth())
    assert response.status_code == 201, response.text
    return Catalog(dear, product["id"], penny)


def order(*lines: tuple[str, int]) -> dict[str, Any]:
    """An order body for a new customer."""
    return {"customer_id": str(uuid4()), "lines": [{"sku": s, "quantity": q} for s, q in lines]}


Case = Callable[[Catalog], tuple[str, dict[str, Any]]]
PAST_A_FIELD_LIMIT: dict[str, tuple[Case, str]] = {
    "price": (
        lambda c: (PRODUCTS, {"sku": new_sku(), "name": "x", "price": "1000000.01",
                              "category": "x"}),
        "less than or equal to 1000000",
    ),
    "reprice": (
        lambda c: (f"{PRODUCTS}/{c.dear_id}/reprice", {"price": "1000000.01"}),
        "less than or equal to 1000000",
    ),
    "unit": (
        lambda c: (PRODUCTS, {"sku": new_sku(), "name": "x", "price": "1.00", "category": "x",
                              "unit": "furlong"}),
        "'each'",
    ),
    "line quantity": (
        lambda c: (ORDERS, order((c.penny, 1_000_001))),
        "less than or equal to 1000000",
    ),
    "lines": (
        lambda c: (ORDERS, order(*((new_sku(), 1) for _ in range(101)))),
        "at most 100 items",
    ),
    "receipt": (
        lambda c: (stock_url(c.penny, "receive"), {"quantity": MAX_ON_HAND + 1}),
        "less than or equal to 1000000000000",
    ),
    "adjustment": (
        lambda c: (stock_url(c.dear, "adjust"), {"delta": -MAX_ON_HAND - 1, "reason": "count"}),
        "greater than or equal to -1000000000000",
    ),
}  # fmt: skip

PAST_A_TOTAL_LIMIT: dict[str, tuple[Case, str]] = {
    "order total": (
        lambda c: (ORDERS, order((c.dear, 100), (c.penny, 1))),
        "order total would be 100000000.01, over the limit of 100000000.00",
    ),
    "stock received": (
        lambda c: (stock_url(c.dear, "receive"), {"quantity": 1}),
        "stock on hand would be 1000000000001, over the limit of 1000000000000",
    ),
    "stock adjusted": (
        lambda c: (stock_url(c.dear, "adjust"), {"delta": 1, "reason": "count"}),
        "stock on hand would be 1000000000001, over the limit of 1000000000000",
    ),
}


@pytest.mark.parametrize("case", PAST_A_FIELD_LIMIT)
async def test_one_past_a_field_limit_is_422_naming_the_limit(
    api: httpx.AsyncClient, auth: Auth, catalog: Catalog, pg_store: PostgresEventStore, case: str
) -> None:
    make, says = PAST_A_FIELD_LIMIT[case]
    before = await count_all(pg_store)
    path, body = make(catalog)
    response = await api.post(path, json=body, headers=auth())
    assert response.status_code == 422, response.text
    assert says in json.dumps(response.json()["detail"])
    assert await count_all(pg_store) == before


@pytest.mark.parametrize("case", PAST_A_TOTAL_LIMIT)
async def test_one_past_a_total_limit_is_409_naming_the_limit(
    api: httpx.AsyncClient, auth: Auth, catalog: Catalog, pg_store: PostgresEventStore, case: str
) -> None:
    make, says = PAST_A_TOTAL_LIMIT[case]
    before = await count_all(pg_store)
    path, body = make(catalog)
    response = await api.post(path, json=body, headers=auth())
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "limit_exceeded"
    assert says in response.json()["detail"]
    assert await count_all(pg_store) == before


async def test_the_openapi_schema_shows_the_limits(api: httpx.AsyncClient) -> None:
    schemas = (await api.get("/openapi.json")).json()["components"]["schemas"]
    price = schemas["RegisterProductRequest"]["properties"]["price"]
    assert "'maximum': 1000000" in str(price)
    assert schemas["ReceiveStockRequest"]["properties"]["quantity"]["maximum"] == MAX_ON_HAND
    assert schemas["OrderLineRequest"]["properties"]["quantity"]["maximum"] == 1_000_000
    assert schemas["PlaceOrderRequest"]["properties"]["lines"]["maxItems"] == 100
