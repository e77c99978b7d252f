"""DESIGN §6 validation: a malformed request is 422 and changes nothing; edge values pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest

from eventstore.postgres import PostgresEventStore
from tests.e2e.conventions.helpers import Auth, product_body
from tests.e2e.helpers import (
    ORDERS,
    PRODUCTS,
    count_all,
    events_of,
    new_sku,
    place_order,
    receive,
    register,
    stock_url,
)

Ctx = dict[str, str]
# name -> (method, url(ctx), request kwargs)
Case = tuple[str, Callable[[Ctx], str], dict[str, Any]]


def _register(**fields: Any) -> Case:
    return ("POST", lambda c: PRODUCTS, {"json": product_body() | fields})


def _raw(url: Callable[[Ctx], str], text: str, content_type: str = "application/json") -> Case:
    return ("POST", url, {"content": text.encode(), "headers": {"Content-Type": content_type}})


def _reprice(price: Any) -> Case:
    return ("POST", lambda c: f"{PRODUCTS}/{c['pid']}/reprice", {"json": {"price": price}})


def _receive(quantity: Any) -> Case:
    return ("POST", lambda c: stock_url(c["sku"], "receive"), {"json": {"quantity": quantity}})


def _adjust(delta: Any) -> Case:
    return (
        "POST",
        lambda c: stock_url(c["sku"], "adjust"),
        {"json": {"delta": delta, "reason": "count"}},
    )


def _order(lines: Any, customer: Any = None) -> Case:
    body = {"customer_id": customer or str(uuid4()), "lines": lines}
    return ("POST", lambda c: ORDERS, {"json": body})


def _line(c: Ctx, quantity: Any) -> dict[str, Any]:
    return {"sku": c["sku"], "quantity": quantity}


def _rename(name: Any) -> Case:
    return ("POST", lambda c: f"{PRODUCTS}/{c['pid']}/rename", {"json": {"name": name}})


REPRICE = lambda c: f"{PRODUCTS}/{c['pid']}/reprice"  # noqa: E731
RENAME = lambda c: f"{PRODUCTS}/{c['pid']}/rename"  # noqa: E731

INVALID: dict[str, Case] = {
    # decimals
    "price-abc": _reprice("abc"),
    "price-3-places": _reprice("1.234"),
    "price-3-places-number": _reprice(1.234),
    "price-nan-string": _reprice("NaN"),
    "price-infinity-string": _reprice("Infinity"),
    "price-nan-literal": _raw(REPRICE, '{"price": NaN}'),
    "price-infinity-literal": _raw(REPRICE, '{"price": Infinity}'),
    "price-1e400": _raw(REPRICE, '{"price": 1e400}'),
    "price-negative": _reprice("-1.00"),
    "price-zero-string": _reprice("0"),
    "price-zero": _reprice(0),
    "price-13-digits": _reprice("12345678901.23"),
    "price-13-digit-integer": _reprice(1234567890123),
    "price-empty": _reprice(""),
    "price-null": _reprice(None),
    "price-bool": _reprice(True),
    "register-price-abc": _register(price="abc"),
    "register-price-negative": _register(price="-5"),
    "register-price-3-places": _register(price="0.001"),
    # quantities
    "quantity-negative": _receive(-1),
    "quantity-zero": _receive(0),
    "quantity-float": _receive(1.5),
    "quantity-integral-float": _receive(2.0),
    "quantity-string": _receive("3"),
    "quantity-bool": _receive(True),
    "quantity-huge": _receive(10**30),
    "delta-zero": _adjust(0),
    "delta-string": _adjust("1"),
    "delta-float": _adjust(1.5),
    "delta-bool": _adjust(True),
    "order-quantity-zero": ("POST", lambda c: ORDERS, {}),  # body built in the test
    "order-quantity-string": ("POST", lambda c: ORDERS, {}),
    "order-quantity-bool": ("POST", lambda c: ORDERS, {}),
    # shapes
    "unknown-field-register": _register(colour="blue"),
    "unknown-field-rename": ("POST", RENAME, {"json": {"name": "A", "extra": 1}}),
    "unknown-field-ship": ("POST", lambda c: f"{ORDERS}/{c['oid']}/ship", {"json": {"x": 1}}),
    "unknown-field-order-line": ("POST", lambda c: ORDERS, {}),
    "missing-field": ("POST", lambda c: PRODUCTS, {"json": {"sku": new_sku(), "name": "A"}}),
    "malformed-json": _raw(lambda c: PRODUCTS, '{"sku": "A", "name": '),
    "json-array": _raw(lambda c: PRODUCTS, "[]"),
    "json-string": _raw(RENAME, '"A"'),
    "json-null": _raw(lambda c: f"{ORDERS}/{c['oid']}/ship", "null"),
    "empty-body": _raw(RENAME, ""),
    "name-nul": _rename("a\u0000b"),
    "name-lone-surrogate": _raw(RENAME, '{"name": "a\\ud800b"}'),
    "name-blank": _rename("   "),
    "name-too-long": _rename("x" * 201),
    "name-control-char": _rename("a\u0007b"),
    "category-nul": _register(category="k\u0000"),
    "description-surrogate": _raw(
        lambda c: PRODUCTS,
        json.dumps(product_body())[:-1] + ', "description": "\\udfff"}',
    ),
    "reason-nul": ("POST", lambda c: f"{ORDERS}/{c['oid']}/cancel", {"json": {"reason": "\0"}}),
    "reason-empty": ("POST", lambda c: f"{ORDERS}/{c['oid']}/cancel", {"json": {"reason": ""}}),
    "reference-surrogate": _raw(
        lambda c: stock_url(c["sku"], "receive"), '{"quantity": 1, "reference": "\\ud83d"}'
    ),
    # orders
    "duplicate-sku-lines": ("POST", lambda c: ORDERS, {}),
    "duplicate-sku-lines-other-case": ("POST", lambda c: ORDERS, {}),
    "empty-lines": _order([]),
    "lines-not-a-list": _order({"sku": "A", "quantity": 1}),
    "customer-not-uuid": ("POST", lambda c: ORDERS, {}),
    # sku and ids
    "register-bad-sku": _register(sku="bad sku!"),
    "register-sku-leading-dash": _register(sku="-ABC"),
    "register-sku-too-long": _register(sku="A" * 65),
    "path-bad-sku": ("POST", lambda c: stock_url("bad!sku", "receive"), {"json": {"quantity": 1}}),
    "path-sku-leading-dot": (
        "POST",
        lambda c: stock_url(".ABC", "adjust"),
        {"json": {"delta": 1, "reason": "x"}},
    ),
    "path-sku-too-long": (
        "POST",
        lambda c: stock_url("A" * 65, "receive"),
        {"json": {"quantity": 1}},
    ),
    "path-sku-non-ascii": (
        "POST",
        lambda c: stock_url("ÄBC", "receive"),
        {"json": {"quantity": 1}},
    ),
    "product-id-not-uuid": ("POST", lambda c: f"{PRODUCTS}/123/rename", {"json": {"name": "A"}}),
    "order-id-not-uuid": ("POST", lambda c: f"{ORDERS}/not-a-uuid/ship", {"json": {}}),
    # content types
    "text-plain": _raw(RENAME, '{"name": "A"}', "text/plain"),
    "form-encoded": _raw(RENAME, "name=A", "application/x-www-form-urlencoded"),
    # headers
    "idempotency-key-too-long": (
        "POST",
        RENAME,
        {"json": {"name": "A"}, "headers": {"Idempotency-Key": "k" * 256}},
    ),
    "correlation-id-bad-chars": (
        "POST",
        RENAME,
        {"json": {"name": "A"}, "headers": {"X-Correlation-ID": "a b/c"}},
    ),
}


def _order_body(case: str, c: Ctx) -> dict[str, Any]:
    customer = str(uuid4())
    line = {"sku": c["sku"], "quantity": 1}
    lines: dict[str, list[dict[str, Any]]] = {
        "order-quantity-zero": [_line(c, 0)],
        "order-quantity-string": [_line(c, "1")],
        "order-quantity-bool": [_line(c, True)],
        "unknown-field-order-line": [line | {"price": "0.01"}],
        "duplicate-sku-lines": [line, line],
        "duplicate-sku-lines-other-case": [line, {"sku": c["sku"].lower(), "quantity": 2}],
        "customer-not-uuid": [line],
    }
    body = {"customer_id": customer, "lines": lines[case]}
    if case == "customer-not-uuid":
        body["customer_id"] = "abc"
    return body


@pytest.fixture
async def ctx(api: httpx.AsyncClient, auth: Auth) -> Ctx:
    """A product with stock and a pending order, so that only the request's own fault counts."""
    sku = new_sku()
    product = await register(api, auth(), sku)
    assert (await receive(api, auth(), sku, 10)).status_code == 201
    order = await place_order(api, auth(), (sku, 1))
    assert order.status_code == 201
    return {"sku": sku, "pid": product["id"], "oid": order.json()["id"]}


@pytest.mark.parametrize("case", list(INVALID))
async def test_invalid_request_is_422_and_changes_nothing(
    api: httpx.AsyncClient,
    auth: Auth,
    clean_db: None,
    pg_store: PostgresEventStore,
    ctx: Ctx,
    case: str,
) -> None:
    method, url, kwargs = INVALID[case]
    kwargs = dict(kwargs)
    if url(ctx) == ORDERS and "json" not in kwargs:
        kwargs["json"] = _order_body(case, ctx)
    kwargs["headers"] = auth() | kwargs.get("headers", {})
    before = await count_all(pg_store)
    assert before == 4  # the fixture's own events

    response = await api.request(method, url(ctx), **kwargs)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert await count_all(pg_store) == before


async def test_ops_route_rejects_a_non_uuid_stream_id(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert (await api.get("/api/v1/ops/streams/abc/events", headers=admin)).status_code == 422


async def test_valid_edge_values_are_accepted(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    """The validation above is not simply refusing everything: the limits themselves pass."""
    sku = new_sku()
    product = await register(api, auth(), sku, price="1000000.00", name="x" * 200)
    data = (await events_of(api, admin, product["id"]))[0]["data"]
    assert data["price"] == "1000000.00"
    assert (await receive(api, auth(), sku, 1_000_000)).status_code == 201
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/reprice", json={"price": "0.01"}, headers=auth()
    )
    assert response.status_code == 200
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/rename", json={"name": "  Ünïcødé ☕  "}, headers=auth()
    )
    assert response.status_code == 200
    assert (await events_of(api, admin, product["id"]))[-1]["data"] == {"name": "Ünïcødé ☕"}
