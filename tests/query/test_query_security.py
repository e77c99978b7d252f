"""Auth on every query route, health/metrics/OpenAPI, and hostile input never being a 500."""

from __future__ import annotations

import time
from uuid import uuid4

import httpx
import jwt
import pytest

from tests.query.helpers import (
    AUDIT,
    ORDER_STATUS,
    ORDERS,
    PRODUCTS,
    SALES_DAILY,
    STOCK,
    TOP_PRODUCTS,
    Auth,
    read,
    register,
    tag,
)

ROUTES = [
    PRODUCTS,
    f"{PRODUCTS}/{uuid4()}",
    f"{PRODUCTS}/by-sku/MUG-001",
    STOCK,
    f"{STOCK}/MUG-001",
    ORDERS,
    f"{ORDERS}/{uuid4()}",
    SALES_DAILY,
    f"{SALES_DAILY}/2024-01-01/skus",
    TOP_PRODUCTS,
    ORDER_STATUS,
    AUDIT,
]
TEMPLATES = {
    "/api/v1/products",
    "/api/v1/products/{product_id}",
    "/api/v1/products/by-sku/{sku}",
    "/api/v1/stock",
    "/api/v1/stock/{sku}",
    "/api/v1/orders",
    "/api/v1/orders/{order_id}",
    "/api/v1/dashboards/sales-daily",
    "/api/v1/dashboards/sales-daily/{day}/skus",
    "/api/v1/dashboards/top-products",
    "/api/v1/dashboards/order-status",
    "/api/v1/audit",
}


def unauthenticated(auth: Auth) -> dict[str, dict[str, str]]:
    """Header sets that must all be a 401."""
    now = int(time.time())
    claims = {"sub": "mallory", "scope": "queries:read", "exp": now + 600}
    wrong_key = jwt.encode(claims, "not-the-secret-" + uuid4().hex, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    valid = auth("queries:read")["Authorization"]
    return {
        "none": {},
        "empty bearer": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "basic": {"Authorization": "Basic ZGFzaGJvYXJkOnNlY3JldA=="},
        "no scheme": {"Authorization": valid.removeprefix("Bearer ")},
        "wrong key": {"Authorization": f"Bearer {wrong_key}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "tampered": {"Authorization": valid[:-4] + ("AAAA" if valid[-4:] != "AAAA" else "BBBB")},
        "expired": auth("queries:read", ttl=-3600),
    }


async def test_every_query_route_is_401_without_a_valid_token(
    query: httpx.AsyncClient, auth: Auth
) -> None:
    for name, headers in unauthenticated(auth).items():
        for route in ROUTES:
            response = await query.get(route, headers=headers)
            assert response.status_code == 401, (name, route, response.text)
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), (name, route)
            assert "detail" in response.json()


@pytest.mark.parametrize(
    "scopes", [("commands:write",), ("ops:admin",), ("commands:write", "ops:admin")]
)
async def test_every_query_route_is_403_without_the_queries_read_scope(
    query: httpx.AsyncClient, auth: Auth, scopes: tuple[str, ...]
) -> None:
    headers = auth(*scopes, sub="writer")
    for route in ROUTES:
        response = await query.get(route, headers=headers)
        assert response.status_code == 403, (route, response.text)
        assert "queries:read" in str(response.json()["detail"])


async def test_a_refused_request_neither_waits_for_freshness_nor_learns_a_position(
    bare_query: httpx.AsyncClient, auth: Auth
) -> None:
    """Auth comes before X-Min-Position: no 2 s wait, no watcher poll, no X-Read-Position."""
    future = {"X-Min-Position": "f" * 32}
    refused = {401: {}, 403: auth("commands:write", sub="writer")}
    for status, headers in refused.items():
        for route in ROUTES:
            started = time.monotonic()
            response = await bare_query.get(route, headers=headers | future)
            assert response.status_code == status, (route, response.text)
            assert time.monotonic() - started < 0.5, route
            assert "X-Read-Position" not in response.headers, route


async def test_every_query_route_answers_a_reader(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    missing = [route for route in ROUTES if route.count("/") > 3 and "dashboards" not in route]
    for route in ROUTES:
        response = await query.get(route, headers=reader)
        assert response.status_code == (404 if route in missing else 200), (route, response.text)
        if route not in missing:
            assert "X-Read-Position" in response.headers, route


async def test_a_404_also_carries_x_read_position(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    """DESIGN §6 / the issue: every response of a query route carries X-Read-Position."""
    for route in (f"{PRODUCTS}/{uuid4()}", f"{STOCK}/NOPE-1", f"{ORDERS}/{uuid4()}"):
        response = await query.get(route, headers=reader)
        assert response.status_code == 404, route
        assert "X-Read-Position" in response.headers, route


async def test_health_and_ready_need_no_token_and_metrics_time_queries(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    health = await query.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = await query.get("/ready")
    assert ready.status_code == 200 and ready.json()["mongodb"] == "ok"
    product_id = uuid4()
    assert (await query.get(f"{PRODUCTS}/{product_id}", headers=reader)).status_code == 404
    assert (await query.get(PRODUCTS, headers=reader)).status_code == 200
    metrics = await query.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "ordertrail_query_seconds" not in text  # renamed (README changelog)
    # Labelled by route template, not by the raw path (bounded label values).
    assert (
        'http_request_duration_seconds_count{method="GET",'
        'route="/api/v1/products/{product_id}",status="404"}'
    ) in text
    assert str(product_id) not in text


async def test_openapi_lists_every_query_route_with_examples(query: httpx.AsyncClient) -> None:
    response = await query.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    listed = {path for path, ops in spec["paths"].items() if "get" in ops}
    assert listed >= TEMPLATES
    for path in TEMPLATES:
        operation = spec["paths"][path]["get"]
        assert {"200", "401", "403", "422"} <= set(operation["responses"]), path
        # Read from the request by the dependency itself, documented all the same.
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "X-Min-Position" in headers, path
        assert operation["security"] == [{"HTTPBearer": []}], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    schemas = spec["components"]["schemas"]
    for model, fields in (
        ("ProductResponse", {"id", "sku", "name", "category", "price", "status", "available"}),
        ("OrderResponse", {"id", "customer_id", "status", "lines", "total", "placed_at"}),
        ("StockResponse", {"sku", "on_hand", "reserved", "available"}),
    ):
        examples = schemas[model].get("examples")
        assert examples and fields <= set(examples[0]), model
    product = spec["paths"]["/api/v1/products/{product_id}"]["get"]["responses"]
    assert product["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ProductResponse"
    )
    assert "404" in product


HOSTILE: list[tuple[str, dict[str, str] | str]] = [
    (PRODUCTS, {"category": '{"$ne": null}'}),
    (PRODUCTS, {"category[$ne]": "x"}),
    (PRODUCTS, {"$where": "sleep(1000)"}),
    (PRODUCTS, {"q": "(.*"}),
    (PRODUCTS, {"q": "[a-"}),
    (PRODUCTS, {"q": "\\"}),
    (PRODUCTS, {"q": "\x00"}),
    (PRODUCTS, "q=%ED%A0%80"),  # a lone surrogate, as raw UTF-8 bytes
    (PRODUCTS, "q=%FF%FE&category=%C0%AF"),  # not UTF-8 at all
    (PRODUCTS, {"min_price": "NaN"}),
    (PRODUCTS, {"max_price": "Infinity"}),
    (PRODUCTS, {"min_price": "1e400"}),
    (PRODUCTS, {"sort": "-"}),
    (PRODUCTS, {"page": "99999999999999999999999"}),
    (PRODUCTS, {"size": "1e3"}),
    (f"{PRODUCTS}/by-sku/%00", {}),
    (f"{PRODUCTS}/..%2F..%2Fetc", {}),
    (f"{PRODUCTS}/{'9' * 500}", {}),
    (STOCK, {"threshold": "99999999999999999999"}),
    (STOCK, {"low_stock": "[]"}),
    (f"{STOCK}/%24ne", {}),
    (ORDERS, {"customer_id[$ne]": "x"}),
    (ORDERS, {"placed_from": "9999-99-99T99:99:99"}),
    (ORDERS, {"placed_from": "-999999-01-01T00:00:00"}),
    (ORDERS, {"placed_to": "1" * 40}),
    (ORDERS, {"status": "confirmed\x00"}),
    (f"{ORDERS}/%7B%22%24ne%22%3Anull%7D", {}),
    (SALES_DAILY, {"date_from": "0001-01-01", "date_to": "9999-12-31"}),
    (SALES_DAILY, {"date_from": "9999-12-31"}),
    (TOP_PRODUCTS, {"by": "units", "limit": "-1"}),
    (TOP_PRODUCTS, {"date_to": "0001-01-01"}),
    (ORDER_STATUS, {"$group": "1"}),
    (AUDIT, {"since": "1e10"}),
    (AUDIT, {"until": "99999-01-01T00:00:00Z"}),
    (AUDIT, {"stream_id": "'; DROP TABLE events; --"}),
    (AUDIT, "actor=%ED%A0%BD"),
]


async def test_hostile_requests_are_never_a_500(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    assert len(HOSTILE) >= 30
    failures: list[tuple[object, ...]] = []
    for path, params in HOSTILE:
        try:
            if isinstance(params, str):  # a raw query string httpx would not encode itself
                response = await query.get(f"{path}?{params}", headers=reader)
            else:
                response = await query.get(path, params=params, headers=reader)
        except Exception as exc:  # in process, an unhandled error surfaces here: a 500
            failures.append((path, params, repr(exc)))
            continue
        if response.status_code >= 500 or (
            response.status_code >= 400 and "detail" not in response.json()
        ):
            failures.append((path, params, response.status_code, response.text))
    bad_min_positions = ("", "x" * 32, "F" * 32, "0" * 31, "0" * 33, '{"$gt": ""}')
    for token in bad_min_positions:
        response = await query.get(PRODUCTS, headers=reader | {"X-Min-Position": token})
        assert response.status_code == 422, (token, response.text)
    assert failures == []


async def test_unknown_parameters_are_ignored_not_evaluated(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    t = tag()
    _, token = await register(api, auth(), f"UNK-{t}", "Thing", "2.00", f"unk-{t}", 3)
    baseline = await read(query, reader, PRODUCTS, token)
    assert baseline["total"] == 1
    for params in ({"color": "red"}, {"filter": '{"sku": {"$ne": 1}}'}, {"projection": "x"}):
        response = await query.get(PRODUCTS, params=params, headers=reader)
        assert response.status_code in (200, 422), (params, response.text)
        if response.status_code == 200:
            assert response.json() == baseline
