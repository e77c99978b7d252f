"""DESIGN §6 operability: /health, /ready, /metrics and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import httpx

from domain.catalog import Product
from eventstore.repository import Repository
from tests.e2e.conventions.helpers import Auth
from tests.e2e.helpers import PRODUCTS, register


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
