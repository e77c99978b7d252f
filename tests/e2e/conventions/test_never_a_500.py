"""DESIGN §6 errors: bad input of any kind is a 4xx, never a 500."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.e2e.conventions.helpers import JSON, Auth, product_body
from tests.e2e.helpers import (
    ORDERS,
    PRODUCTS,
    new_sku,
    place_order,
    receive,
    register,
    stock_url,
    types_of,
)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


SWEEP: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", PRODUCTS, {"content": b"\xff\xfe{}", "headers": JSON}),
    ("POST", PRODUCTS, {"content": b'{"sku": "\xff"}', "headers": JSON}),
    ("POST", PRODUCTS, {"content": _deep(30000).encode(), "headers": JSON}),
    ("POST", PRODUCTS, {"content": ('{"name": ' + _deep(30000) + "}").encode(), "headers": JSON}),
    ("POST", PRODUCTS, {"content": b'{"sku": "A", "price": NaN}', "headers": JSON}),
    ("POST", PRODUCTS, {"content": b'{"sku": "A", "price": -1e999}', "headers": JSON}),
    ("POST", PRODUCTS, {"content": b'{"sku": "A", "name": "\\udc00"}', "headers": JSON}),
    ("POST", PRODUCTS, {"json": product_body(price="1e999999999")}),
    ("POST", PRODUCTS, {"json": product_body(price="1e-400")}),
    ("POST", PRODUCTS, {"json": product_body(price="-0")}),
    ("POST", PRODUCTS, {"json": product_body(price="sNaN")}),
    ("POST", PRODUCTS, {"json": product_body(price=[1])}),
    ("POST", PRODUCTS, {"json": product_body(price={"amount": 1})}),
    ("POST", PRODUCTS, {"json": product_body(sku=123)}),
    ("POST", PRODUCTS, {"json": product_body(name=None)}),
    ("POST", PRODUCTS, {"json": product_body(description="d" * 5000)}),
    ("POST", PRODUCTS, {"json": {}}),
    ("POST", PRODUCTS, {"json": product_body(), "headers": {"If-Match": '"999999999"'}}),
    ("POST", PRODUCTS, {"json": product_body(), "headers": {"If-Match": '"9999999999"'}}),
    (
        "POST",
        PRODUCTS,
        {"json": product_body(), "headers": {"If-Match": 'W/"-1"'}},
    ),
    ("POST", PRODUCTS, {"json": product_body(), "headers": {"Idempotency-Key": ""}}),
    ("POST", PRODUCTS, {"json": product_body(), "headers": {"Content-Type": "application/xml"}}),
    ("POST", PRODUCTS, {"json": product_body(), "headers": {"X-Causation-ID": "x" * 500}}),
    ("POST", f"{PRODUCTS}/{uuid4()}/rename", {"json": {"name": "x" * 100_000}}),
    ("POST", f"{PRODUCTS}/{'0' * 40}/reprice", {"json": {"price": "1.00"}}),
    ("POST", f"{PRODUCTS}/{uuid4()}/discontinue", {"json": {"reason": "r" * 501}}),
    ("POST", stock_url("A" * 64, "receive"), {"json": {"quantity": 1}}),
    ("POST", stock_url("A%00B", "receive"), {"json": {"quantity": 1}}),
    ("POST", stock_url("SKU", "adjust"), {"json": {"delta": -(10**6) - 1, "reason": "x"}}),
    ("POST", stock_url("SKU", "adjust"), {"json": {"delta": 1}}),
    ("POST", ORDERS, {"json": {"customer_id": str(uuid4()), "lines": [{}] * 101}}),
    ("POST", ORDERS, {"json": {"customer_id": str(uuid4()), "lines": [[1, 2]]}}),
    ("POST", ORDERS, {"json": {"customer_id": 5, "lines": "x"}}),
    ("POST", f"{ORDERS}/{uuid4()}/ship", {"content": b"", "headers": JSON}),
    ("POST", f"{ORDERS}/{uuid4()}/cancel", {"json": {"reason": 1}}),
    ("GET", f"{ORDERS}/{uuid4()}/ship", {}),
    ("DELETE", PRODUCTS, {}),
    ("GET", f"/api/v1/ops/streams/{uuid4()}/events?limit=0", {}),
    ("GET", f"/api/v1/ops/streams/{uuid4()}/events?limit=abc&from_version=-1", {}),
    ("GET", f"/api/v1/ops/streams/{uuid4()}/events?from_version=99999999999", {}),
]


@pytest.mark.parametrize("index", range(len(SWEEP)))
async def test_bad_requests_never_cause_a_500(
    api: httpx.AsyncClient, admin: dict[str, str], index: int
) -> None:
    method, url, kwargs = SWEEP[index]
    kwargs = dict(kwargs)
    kwargs["headers"] = admin | kwargs.get("headers", {})
    response = await api.request(method, url, **kwargs)
    assert response.status_code < 500, (method, url, response.status_code, response.text)
    assert response.status_code >= 400, (method, url, response.status_code)


async def test_commands_naming_another_kind_of_stream_are_404_not_500(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    product = await register(api, auth(), sku)
    stock = (await receive(api, auth(), sku, 1)).json()
    order = (await place_order(api, auth(), (sku, 1))).json()
    for url, body in (
        (f"{ORDERS}/{product['id']}/cancel", {"reason": "x"}),
        (f"{ORDERS}/{stock['id']}/ship", {}),
        (f"{PRODUCTS}/{order['id']}/rename", {"name": "x"}),
        (f"{PRODUCTS}/{stock['id']}/reprice", {"price": "1.00"}),
    ):
        response = await api.post(url, json=body, headers=auth())
        assert response.status_code == 404, (url, response.status_code, response.text)
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered"]
    assert await types_of(api, admin, order["id"]) == ["OrderPlaced"]
