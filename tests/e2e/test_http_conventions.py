"""DESIGN §6 over HTTP: auth, If-Match, body limit, validation, idempotency, health, OpenAPI."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest

from command_api.dispatch import request_hash
from core.auth import mint_token
from domain.catalog import Product
from domain.values import product_id
from eventstore.postgres import PostgresEventStore
from eventstore.repository import Repository
from tests.e2e.helpers import (
    ORDERS,
    PRODUCTS,
    assert_command_response,
    count_all,
    events_of,
    new_sku,
    place_order,
    receive,
    register,
    stock_url,
    stream_url,
    types_of,
)

Auth = Callable[..., dict[str, str]]
LIMIT = 64 * 1024


def product_body(sku: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid registration body."""
    return {"sku": sku or new_sku(), "name": "Mug", "price": "9.50", "category": "kitchen"} | fields


# --------------------------------------------------------------------------- auth


def _bad_credentials() -> dict[str, dict[str, str]]:
    now = 1_700_000_000
    no_sub = jwt.encode({"scope": "commands:write ops:admin", "exp": 2**40}, "k" * 32, "HS256")
    return {
        "missing": {},
        "scheme-only": {"Authorization": "Bearer"},
        "basic-scheme": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        "not-a-jwt": {"Authorization": "Bearer not-a-jwt"},
        "bad-signature": {
            "Authorization": "Bearer "
            + mint_token(
                "some-other-secret-" + "x" * 32, "mallory", ["commands:write", "ops:admin"]
            )
        },
        "unsigned": {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "mallory", "scope": "commands:write ops:admin", "exp": 2**40},
                key="",
                algorithm="none",
            )
        },
        "foreign-no-sub": {"Authorization": f"Bearer {no_sub}"},
        "foreign-expired": {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "a", "scope": "commands:write", "exp": now}, "k" * 32, "HS256")
        },
    }


BAD_CREDENTIALS = _bad_credentials()


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_command_route_refuses_bad_credentials_with_401(
    api: httpx.AsyncClient, admin: dict[str, str], case: str
) -> None:
    sku = new_sku()
    response = await api.post(PRODUCTS, json=product_body(sku), headers=BAD_CREDENTIALS[case])
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_ops_route_refuses_bad_credentials_with_401(
    api: httpx.AsyncClient, auth: Auth, case: str
) -> None:
    product = await register(api, auth())
    response = await api.get(stream_url(product["id"]), headers=BAD_CREDENTIALS[case])
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_expired_token_is_401(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    expired = auth("commands:write", "ops:admin", ttl=-3600)
    response = await api.post(PRODUCTS, json=product_body(sku), headers=expired)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await events_of(api, admin, product_id(sku)) == []

    stream = await api.get(stream_url(product_id(sku)), headers=expired)
    assert stream.status_code == 401
    assert stream.headers["WWW-Authenticate"].startswith("Bearer")


async def test_token_within_its_lifetime_is_accepted(api: httpx.AsyncClient, auth: Auth) -> None:
    response = await api.post(PRODUCTS, json=product_body(), headers=auth(ttl=60))
    assert response.status_code == 201


async def test_wrong_scope_is_403(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    reader = auth("queries:read", sub="reader")
    sku = new_sku()
    response = await api.post(PRODUCTS, json=product_body(sku), headers=reader)
    assert response.status_code == 403, response.text
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []

    product = await register(api, auth())
    renamed = await api.post(
        f"{PRODUCTS}/{product['id']}/rename", json={"name": "X"}, headers=reader
    )
    assert renamed.status_code == 403
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered"]

    assert (await api.get(stream_url(product["id"]), headers=reader)).status_code == 403
    # commands:write does not open the ops routes, ops:admin does not allow commands
    assert (await api.get(stream_url(product["id"]), headers=auth())).status_code == 403
    ops_only = auth("ops:admin")
    assert (await api.post(PRODUCTS, json=product_body(), headers=ops_only)).status_code == 403
    assert (await api.get(stream_url(product["id"]), headers=ops_only)).status_code == 200


# --------------------------------------------------------------------------- If-Match


async def test_if_match_matching_version_succeeds(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}"
    response = await api.post(
        f"{url}/rename", json={"name": "A"}, headers=auth() | {"If-Match": '"1"'}
    )
    assert_command_response(response, 200, 2, product["id"])
    # weak form and the ETag just returned both work
    etag = response.headers["ETag"]
    response = await api.post(
        f"{url}/reprice", json={"price": "2.00"}, headers=auth() | {"If-Match": etag}
    )
    assert_command_response(response, 200, 3, product["id"])
    response = await api.post(
        f"{url}/rename", json={"name": "B"}, headers=auth() | {"If-Match": 'W/"3"'}
    )
    assert_command_response(response, 200, 4, product["id"])
    assert len(await events_of(api, admin, product["id"])) == 4


async def test_if_match_stale_version_is_412_and_appends_nothing(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}"
    assert (await api.post(f"{url}/rename", json={"name": "A"}, headers=auth())).status_code == 200
    for stale in ('"1"', '"3"', '"0"'):
        response = await api.post(
            f"{url}/rename", json={"name": "B"}, headers=auth() | {"If-Match": stale}
        )
        assert response.status_code == 412, (stale, response.text)
        assert "detail" in response.json()
    events = await events_of(api, admin, product["id"])
    assert [e["type"] for e in events] == ["ProductRegistered", "ProductRenamed"]
    assert events[1]["data"] == {"name": "A"}


async def test_if_match_on_stock_and_orders(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    stock = (await receive(api, auth(), sku, 5)).json()  # version 2
    stale = await api.post(
        stock_url(sku, "receive"), json={"quantity": 1}, headers=auth() | {"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    fresh = await api.post(
        stock_url(sku, "adjust"),
        json={"delta": -1, "reason": "x"},
        headers=auth() | {"If-Match": '"2"'},
    )
    assert_command_response(fresh, 200, 3, stock["id"])

    order = (await place_order(api, auth(), (sku, 1))).json()
    stale = await api.post(
        f"{ORDERS}/{order['id']}/cancel",
        json={"reason": "x"},
        headers=auth() | {"If-Match": '"7"'},
    )
    assert stale.status_code == 412
    assert await types_of(api, admin, order["id"]) == ["OrderPlaced"]


@pytest.mark.parametrize("value", ["1", "abc", '"x"', '"1', '"-1"', '"1.0"', '"1", "2"'])
async def test_malformed_if_match_is_422(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str], value: str
) -> None:
    product = await register(api, auth())
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/rename",
        json={"name": "A"},
        headers=auth() | {"If-Match": value},
    )
    assert response.status_code == 422, response.text
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered"]


# --------------------------------------------------------------------------- body size


async def test_body_over_64_kib_with_content_length_is_413(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    text = json.dumps(product_body(sku))
    padded = text[:-1] + " " * (LIMIT + 1 - len(text)) + "}"
    assert len(padded.encode()) == LIMIT + 1
    response = await api.post(
        PRODUCTS, content=padded, headers=auth() | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []


async def test_body_of_exactly_64_kib_is_accepted(api: httpx.AsyncClient, auth: Auth) -> None:
    text = json.dumps(product_body())
    padded = text[:-1] + " " * (LIMIT - len(text)) + "}"
    assert len(padded.encode()) == LIMIT
    response = await api.post(
        PRODUCTS, content=padded, headers=auth() | {"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


def chunked(payload: bytes, size: int = 4096) -> Callable[[], AsyncIterator[bytes]]:
    """A body httpx sends without Content-Length (chunked)."""

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), size):
            yield payload[start : start + size]

    return body


async def test_chunked_body_over_64_kib_is_413(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    text = json.dumps(product_body(sku))
    payload = (text[:-1] + " " * (LIMIT + 10) + "}").encode()
    request = api.build_request(
        "POST",
        PRODUCTS,
        content=chunked(payload)(),
        headers=auth() | {"Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await api.send(request)
    assert response.status_code == 413, response.text
    assert await events_of(api, admin, product_id(sku)) == []


async def test_chunked_body_under_the_limit_is_accepted(api: httpx.AsyncClient, auth: Auth) -> None:
    payload = json.dumps(product_body()).encode()
    request = api.build_request(
        "POST",
        PRODUCTS,
        content=chunked(payload, 7)(),
        headers=auth() | {"Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await api.send(request)
    assert_command_response(response, 201, 1)


# --------------------------------------------------------------------------- validation

Ctx = dict[str, str]
# name -> (method, url(ctx), request kwargs)
Case = tuple[str, Callable[[Ctx], str], dict[str, Any]]

JSON = {"Content-Type": "application/json"}


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


# --------------------------------------------------------------------------- Idempotency-Key


async def test_idempotent_repeat_replays_and_appends_nothing(
    api: httpx.AsyncClient, auth: Auth, clean_db: None, pg_store: PostgresEventStore
) -> None:
    key = {"Idempotency-Key": f"reg-{uuid4()}"}
    body = product_body()
    first = await api.post(PRODUCTS, json=body, headers=auth() | key)
    created = assert_command_response(first, 201, 1)
    assert "Idempotent-Replayed" not in first.headers
    assert await count_all(pg_store) == 1

    for _ in range(2):
        again = await api.post(PRODUCTS, json=body, headers=auth() | key)
        assert again.status_code == 201, again.text
        assert again.json() == created
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["X-Position"] == first.headers["X-Position"]
    assert await count_all(pg_store) == 1


async def test_idempotent_order_placement_creates_one_order(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    key = {"Idempotency-Key": uuid4().hex}
    body = {"customer_id": str(uuid4()), "lines": [{"sku": sku, "quantity": 2}]}
    first = await api.post(ORDERS, json=body, headers=auth() | key)
    second = await api.post(ORDERS, json=body, headers=auth() | key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, first.json()["id"]) == ["OrderPlaced"]
    assert (await events_of(api, admin, first.json()["id"]))[0]["metadata"][
        "idempotency_key"
    ] == key["Idempotency-Key"]


async def test_idempotent_repeat_of_an_update_returns_the_first_200(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}/rename"
    key = {"Idempotency-Key": uuid4().hex}
    first = await api.post(url, json={"name": "A"}, headers=auth() | key)
    assert_command_response(first, 200, 2)
    other = await api.post(url, json={"name": "B"}, headers=auth())
    assert other.status_code == 200
    again = await api.post(url, json={"name": "A"}, headers=auth() | key)
    assert again.status_code == 200
    assert again.json() == first.json()  # version 2, not 4
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, product["id"]) == [
        "ProductRegistered",
        "ProductRenamed",
        "ProductRenamed",
    ]


async def test_same_key_with_a_different_body_is_422(
    api: httpx.AsyncClient, auth: Auth, clean_db: None, pg_store: PostgresEventStore
) -> None:
    key = {"Idempotency-Key": uuid4().hex}
    sku = new_sku()
    first = await api.post(PRODUCTS, json=product_body(sku), headers=auth() | key)
    assert first.status_code == 201
    other = await api.post(PRODUCTS, json=product_body(sku, name="Different"), headers=auth() | key)
    assert other.status_code == 422, other.text
    assert "detail" in other.json()
    # another route with the key is another request too
    renamed = await api.post(
        f"{PRODUCTS}/{first.json()['id']}/rename", json={"name": "Z"}, headers=auth() | key
    )
    assert renamed.status_code == 422
    assert await count_all(pg_store) == 1


async def test_same_key_with_another_if_match_is_another_request(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url, body = f"{PRODUCTS}/{product['id']}/rename", {"name": "A"}
    key = {"Idempotency-Key": uuid4().hex}
    first = await api.post(url, json=body, headers=auth() | key | {"If-Match": '"1"'})
    assert_command_response(first, 200, 2)
    other = await api.post(url, json=body, headers=auth() | key | {"If-Match": '"2"'})
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    unconditional = await api.post(url, json=body, headers=auth() | key)
    assert unconditional.status_code == 422, unconditional.text
    # The weak form names the same version: the very same request, replayed.
    again = await api.post(url, json=body, headers=auth() | key | {"If-Match": 'W/"1"'})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered", "ProductRenamed"]


async def test_same_key_in_flight_is_409(
    api: httpx.AsyncClient, auth: Auth, pg_store: PostgresEventStore, admin: dict[str, str]
) -> None:
    sub, key, sku = f"user-{uuid4().hex[:8]}", uuid4().hex, new_sku()
    body = product_body(sku)
    fingerprint = request_hash("POST", PRODUCTS, json.dumps(body).encode())
    await pg_store.claim_idempotency(sub, key, fingerprint)

    response = await api.post(PRODUCTS, json=body, headers=auth(sub=sub) | {"Idempotency-Key": key})
    assert response.status_code == 409, response.text
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []

    # another subject's identical key is not in flight
    response = await api.post(PRODUCTS, json=body, headers=auth() | {"Idempotency-Key": key})
    assert response.status_code == 201


async def test_keys_are_scoped_per_subject(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    key = {"Idempotency-Key": uuid4().hex}
    alice, bob = f"alice-{uuid4().hex[:6]}", f"bob-{uuid4().hex[:6]}"
    alice_body, bob_body = product_body(), product_body()
    first = await api.post(PRODUCTS, json=alice_body, headers=auth(sub=alice) | key)
    second = await api.post(PRODUCTS, json=bob_body, headers=auth(sub=bob) | key)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert (await events_of(api, admin, second.json()["id"]))[0]["metadata"]["actor"] == bob

    # each subject's repeat replays its own answer
    again = await api.post(PRODUCTS, json=bob_body, headers=auth(sub=bob) | key)
    assert again.json() == second.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    again = await api.post(PRODUCTS, json=alice_body, headers=auth(sub=alice) | key)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_failed_command_does_not_keep_the_key(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    key = {"Idempotency-Key": uuid4().hex}
    body = {"quantity": 3, "reference": "PO-9"}
    missing = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    assert missing.status_code == 404
    again = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    assert again.status_code == 404
    assert "Idempotent-Replayed" not in again.headers

    await register(api, auth(), sku)
    fixed = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    created = assert_command_response(fixed, 201, 2)
    assert "Idempotent-Replayed" not in fixed.headers
    replayed = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    assert replayed.status_code == 201
    assert replayed.json() == created
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, created["id"]) == ["StockItemOpened", "StockReceived"]


async def test_conflicting_command_does_not_keep_the_key(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    assert (await receive(api, auth(), sku, 1)).status_code == 201
    key = {"Idempotency-Key": uuid4().hex}
    body = {"delta": -2, "reason": "count"}
    refused = await api.post(stock_url(sku, "adjust"), json=body, headers=auth() | key)
    assert refused.status_code == 409
    assert (await receive(api, auth(), sku, 1)).status_code == 200  # on hand 2 now
    fixed = await api.post(stock_url(sku, "adjust"), json=body, headers=auth() | key)
    assert fixed.status_code == 200, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


# --------------------------------------------------------------------------- health, metrics, docs


async def test_health_and_ready(api: httpx.AsyncClient) -> None:
    health = await api.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = await api.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["postgres"] == "ok"


def _counter(text: str, command: str, outcome: str) -> float:
    pattern = (
        r"^ordertrail_commands_total\{"
        rf'(?=[^}}]*command="{command}")(?=[^}}]*outcome="{outcome}")[^}}]*\}} (\S+)$'
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_commands(api: httpx.AsyncClient, auth: Auth) -> None:
    before = (await api.get("/metrics")).text
    await register(api, auth())
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "ordertrail_commands_total" in response.text
    assert _counter(response.text, "RegisterProduct", "ok") == (
        _counter(before, "RegisterProduct", "ok") + 1
    )


def _retries(text: str, stream_type: str) -> float:
    pattern = rf'^ordertrail_command_retries_total\{{stream_type="{stream_type}"\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_commands_re_run_after_a_lost_race(
    api: httpx.AsyncClient, auth: Auth, repository: Repository
) -> None:
    product = (await register(api, auth()))["id"]
    url = f"{PRODUCTS}/{product}/rename"
    assert (await api.post(url, json={"name": "A"}, headers=auth())).status_code == 200
    before = _retries((await api.get("/metrics")).text, "Product")

    def rename(found: Product | None) -> Product:
        assert found is not None
        found.rename("Elsewhere")
        return found

    # Another writer (another API process, say) appends after the API cached the product.
    await repository.execute(Product, UUID(product), rename)
    assert (await api.post(url, json={"name": "B"}, headers=auth())).status_code == 200
    assert _retries((await api.get("/metrics")).text, "Product") == before + 1


COMMAND_ROUTES = {
    ("post", "/api/v1/products"),
    ("post", "/api/v1/products/{}/rename"),
    ("post", "/api/v1/products/{}/reprice"),
    ("post", "/api/v1/products/{}/discontinue"),
    ("post", "/api/v1/stock/{}/receive"),
    ("post", "/api/v1/stock/{}/adjust"),
    ("post", "/api/v1/orders"),
    ("post", "/api/v1/orders/{}/cancel"),
    ("post", "/api/v1/orders/{}/ship"),
    ("get", "/api/v1/ops/streams/{}/events"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
}


async def _documented_routes(api: httpx.AsyncClient) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    routes = {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for path, item in doc["paths"].items()
        for method in item
    }
    return doc, routes


async def test_openapi_lists_every_command_route(api: httpx.AsyncClient) -> None:
    _, routes = await _documented_routes(api)
    assert COMMAND_ROUTES - routes == set()


async def test_openapi_request_bodies_have_examples(api: httpx.AsyncClient) -> None:
    doc, _ = await _documented_routes(api)
    schemas = doc["components"]["schemas"]
    checked = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method != "post" or not path.startswith(
                ("/api/v1/products", "/api/v1/stock", "/api/v1/orders")
            ):
                continue
            media = operation["requestBody"]["content"]["application/json"]
            schema = media["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            examples = media.get("examples") or media.get("example") or schema.get("examples")
            assert examples, f"{method.upper()} {path} has no request example"
            checked += 1
            security = operation.get("security")
            assert security == [{"HTTPBearer": []}], f"{method.upper()} {path} documents no auth"
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            expected = {"Idempotency-Key", "If-Match", "X-Correlation-ID", "X-Causation-ID"}
            assert headers == expected, f"{method.upper()} {path} documents {headers}"
    assert checked == 9
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# --------------------------------------------------------------------------- never a 500


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
