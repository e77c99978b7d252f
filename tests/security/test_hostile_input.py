"""Hostile input the other suites do not cover: deep nesting, and a MongoDB operator in every
query parameter of every query route (taken from the OpenAPI schema, so new ones are covered)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

Auth = Callable[..., dict[str, str]]
OPERATORS = ['{"$ne": null}', '{"$gt": ""}', "$where", '{"$regex": ".*"}', "[$ne]"]
PATH_VALUES = {
    "product_id": str(uuid.uuid4()),
    "order_id": str(uuid.uuid4()),
    "sku": "HOST-1",
    "day": "2026-01-31",
}


async def _events(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.text("SELECT count(*) FROM events")) or 0)


async def test_deeply_nested_json_is_refused_and_appends_nothing(
    api: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    """Thousands of nesting levels (under the 64 KiB limit) are a 4xx, never a RecursionError."""
    before = await _events(engine)
    for depth in (1_000, 20_000):
        for opener, closer in (("[", "]"), ('{"a":', "}")):
            body = '{"sku": ' + opener * depth + "1" + closer * depth + "}"
            response = await api.post(
                "/api/v1/products",
                content=body.encode(),
                headers={**auth(), "Content-Type": "application/json"},
            )
            assert 400 <= response.status_code < 500, (depth, opener, response.status_code)
            assert "detail" in response.json()
    assert await _events(engine) == before


async def test_an_operator_in_any_query_parameter_is_a_literal_or_a_422(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    """Every parameter of every query route, with operator-looking values and bracket keys."""
    sku = "HOST-" + uuid.uuid4().hex[:6].upper()
    body = {"sku": sku, "name": "Hostile", "price": "2.00", "category": "hostile"}
    created = await api.post("/api/v1/products", json=body, headers=auth())
    assert created.status_code == 201
    received = await api.post(f"/api/v1/stock/{sku}/receive", json={"quantity": 3}, headers=auth())
    # Every view has this write before we compare (nothing else writes meanwhile).
    fresh = {**reader, "X-Min-Position": received.headers["x-position"]}
    schema = (await query.get("/openapi.json")).json()
    tried, failures = 0, []
    for template, operations in schema["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        path = template.format(**PATH_VALUES)
        baseline = await query.get(path, headers=fresh)
        for name in [p["name"] for p in parameters if p["in"] == "query"]:
            for value in OPERATORS:
                tried += 1
                response = await query.get(path, params={name: value}, headers=reader)
                if response.status_code >= 500 or not _literal(response, name):
                    failures.append((path, name, value, response.status_code, response.text[:200]))
                # `name[$ne]=...` is not a parameter of ours: ignored, never an operator.
                tried += 1
                bracket = await query.get(path, params={f"{name}[$ne]": value}, headers=reader)
                if (bracket.status_code, bracket.json()) != (baseline.status_code, baseline.json()):
                    failures.append((path, f"{name}[$ne]", value, bracket.status_code))
    assert tried >= 150, tried  # the schema lists the filters: this ran over all of them
    assert failures == []


def _literal(response: httpx.Response, name: str) -> bool:
    """A 4xx with a detail, or an answer that did not widen the filter to everything."""
    if response.status_code >= 400:
        return "detail" in response.json()
    data: Any = response.json()
    if not isinstance(data, dict) or "items" not in data:
        return True  # a single document or a dashboard: nothing a filter could widen
    # Text filters matched as the literal string: nothing is called '{"$ne": null}'.
    text_filters = {"category", "status", "q", "actor", "type", "customer_id", "stream_id"}
    return name not in text_filters or data["total"] == 0
