"""OpenTelemetry: one order's command span, its append, its projections and its fulfilment
steps share a trace id, across the event store, through the trace context in the metadata.

A process of its own runs the command API and a worker with an in-memory exporter: a tracer
provider is global to a process and, once set, would change how every later test's app runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from typing import Any

from core.settings import Settings
from core.tracing import configure_tracing, enabled, wanted
from tests.conftest import JWT_SECRET
from tests.reliability.faults import process_env

SCRIPT = r"""
import asyncio, json, uuid
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from core import tracing

exporter = InMemorySpanExporter()
tracing.install([SimpleSpanProcessor(exporter)], "ordertrail-test")  # before any client

import httpx
from command_api.app import create_app
from core.auth import mint_token
from core.settings import Settings
from workers.bootstrap import subscription_service


async def main() -> None:
    settings = Settings()
    service, stop = subscription_service(settings), asyncio.Event()
    worker = asyncio.create_task(service.run(stop))
    app = create_app(settings)
    token = mint_token(settings.secret, "tracer", ["commands:write"])
    headers = {"Authorization": "Bearer " + token}
    sku = "TRC-" + uuid.uuid4().hex[:6]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            product = {"sku": sku, "name": "Traced", "price": "3.00", "category": "t"}
            created = await api.post("/api/v1/products", json=product, headers=headers)
            assert created.status_code == 201
            receive = {"quantity": 5}
            stocked = await api.post(f"/api/v1/stock/{sku}/receive", json=receive, headers=headers)
            assert stocked.status_code in (200, 201)
            order = {"customer_id": str(uuid.uuid4()), "lines": [{"sku": sku, "quantity": 2}]}
            placed = await api.post("/api/v1/orders", json=order, headers=headers)
            assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    names = lambda: {s.name for s in exporter.get_finished_spans()}
    for _ in range(600):  # until the confirmation is projected (60 s at most)
        confirmed = [
            s for s in exporter.get_finished_spans()
            if s.name == "project orders"
            and s.attributes.get("ordertrail.event_type") == "OrderConfirmed"
        ]
        if confirmed and "fulfil OrderPlaced" in names():
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(worker, 30)
    spans = [
        {
            "name": s.name,
            "trace": format(s.context.trace_id, "032x"),
            "span": format(s.context.span_id, "016x"),
            "parent": format(s.parent.span_id, "016x") if s.parent else None,
            "attributes": {k: str(v) for k, v in (s.attributes or {}).items()},
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"order_id": order_id, "spans": spans}))


asyncio.run(main())
"""


def test_one_orders_spans_share_its_commands_trace(read_settings: Settings, clean_db: None) -> None:
    env = {**os.environ, **process_env(read_settings), "JWT_SECRET": JWT_SECRET}
    env |= {"ORDERTRAIL_ENV": "test", "PROJECTION_TICK_SECONDS": "0.05", "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    spans: list[dict[str, Any]] = report["spans"]
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace"]].append(span)

    [command] = [
        s for s in spans if s["name"] == "POST /api/v1/orders" and s["parent"] is None
    ]  # FastAPI's server span: the root of the order's trace
    trace = by_trace[command["trace"]]
    names = {s["name"] for s in trace}
    # The command's own append, and the worker's work on its events, in the same trace.
    assert {"append", "project orders", "project sales_daily", "project audit_log"} <= names
    assert "fulfil OrderPlaced" in names
    fulfil = next(s for s in trace if s["name"] == "fulfil OrderPlaced")
    assert fulfil["attributes"]["ordertrail.stream_id"] == report["order_id"]
    # Fulfilment's commands went on in that trace: their appends and the stock reservation's
    # and confirmation's projections are in it too.
    assert any(s["name"] == "append" and s["parent"] == fulfil["span"] for s in trace)
    projected = {
        (s["name"], s["attributes"].get("ordertrail.event_type"))
        for s in trace
        if s["name"].startswith("project ")
    }
    assert ("project orders", "OrderConfirmed") in projected
    assert ("project stock", "StockReserved") in projected
    # PostgreSQL calls (the store, from asyncpg) are spans of the trace as well.
    assert any(s["attributes"].get("db.system") == "postgresql" for s in trace)
    # MongoDB calls are traced (the projections' writes, under their batch spans).
    assert any(s["attributes"].get("db.system") == "mongodb" for s in spans)
    assert any(s["name"].startswith("project batch ") for s in spans)


def test_tracing_is_off_without_otel_variables() -> None:
    """No OTEL_* variable: nothing is configured (and this process traces nothing)."""
    assert wanted({}) == []
    assert wanted({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}) == []
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert wanted({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]
    assert configure_tracing("test", {}) is False
    assert not enabled()
