"""Live read models through a real query API: the current answer, then each change, resumable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from core.settings import Settings
from tests.conftest import JWT_SECRET
from tests.reliability.faults import process_env
from tests.support.processes import uvicorn_server
from tests.support.sse import Message, messages
from workers.bootstrap import subscription_service

Auth = Callable[..., dict[str, str]]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def live_server(read_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The query API as a uvicorn child process on this test's read models."""
    env = process_env(read_settings) | {"JWT_SECRET": JWT_SECRET, "ORDERTRAIL_ENV": "test"}
    env |= {"SSE_HEARTBEAT_SECONDS": "0.5", "LIVE_QUEUE_SIZE": "4"}
    with uvicorn_server("query_api.main:app", env, tmp_path / "query.log") as url:
        yield url


@contextlib.asynccontextmanager
async def running(settings: Settings, *names: str) -> AsyncIterator[None]:
    """An in-process worker serving only `names` while inside."""
    service, stop = subscription_service(settings, only=frozenset(names)), asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def changes(response: httpx.Response) -> AsyncIterator[tuple[str | None, Any]]:
    """(id, data) of each event of a stream, heartbeats left out."""
    message: Message
    async for message in messages(response):
        if message.comment is None:
            yield message.id, orjson.loads(message.text)


async def next_change(stream: AsyncIterator[tuple[str | None, Any]]) -> tuple[str | None, Any]:
    """The stream's next change, within 10 s."""
    return await asyncio.wait_for(anext(stream), 10)


async def test_an_order_streams_pending_then_confirmed_then_shipped(
    api: httpx.AsyncClient,
    auth: Auth,
    reader: dict[str, str],
    live_server: str,
    read_settings: Settings,
    clean_db: None,
) -> None:
    product = {"sku": "LIVE-1", "name": "live", "price": "3.00", "category": "live"}
    assert (await api.post("/api/v1/products", json=product, headers=auth())).status_code == 201
    stocked = await api.post("/api/v1/stock/LIVE-1/receive", json={"quantity": 9}, headers=auth())
    assert stocked.status_code == 201
    body = {
        "customer_id": "00000000-0000-4000-8000-000000000001",
        "lines": [{"sku": "LIVE-1", "quantity": 2}],
    }
    order_id = (await api.post("/api/v1/orders", json=body, headers=auth())).json()["id"]
    seen: list[str | None] = []
    async with httpx.AsyncClient(base_url=live_server, timeout=20) as client:
        url = f"/api/v1/live/orders/{order_id}"
        async with client.stream("GET", url, headers=reader | SSE) as response:
            assert response.status_code == 200
            stream = changes(response)
            first_id, first = await next_change(stream)
            assert first is None  # nothing projected yet: the order is not in the read model
            async with running(read_settings, "orders", "stock", "products"):
                _, pending = await next_change(stream)
                seen.append(pending["status"])
                async with running(read_settings, "fulfilment"):
                    _, confirmed = await next_change(stream)
                    seen.append(confirmed["status"])
                shipped = await api.post(f"/api/v1/orders/{order_id}/ship", json={}, headers=auth())
                assert shipped.status_code == 200, shipped.text
                last_id, last = await next_change(stream)
                seen.append(last["status"])
        assert seen == ["pending", "confirmed", "shipped"]
        assert last["id"] == order_id and [h["status"] for h in last["history"]] == seen
        # Resumed after the last change: nothing is sent again until something changes.
        headers = reader | SSE | {"Last-Event-ID": last_id or ""}
        async with client.stream("GET", url, headers=headers) as response:
            async for message in messages(response):
                assert message.comment == "heartbeat", message  # no repeat of the order
                break
        async with client.stream(
            "GET", url, headers=reader | SSE | {"Last-Event-ID": first_id or ""}
        ) as response:
            _, again = await next_change(changes(response))
            assert again["status"] == "shipped"  # changed since that id: the current answer


async def test_a_dashboard_counts_orders_live_and_bad_input_is_refused(
    api: httpx.AsyncClient,
    auth: Auth,
    reader: dict[str, str],
    live_server: str,
    read_settings: Settings,
    clean_db: None,
) -> None:
    async with httpx.AsyncClient(base_url=live_server, timeout=20) as client:
        url = "/api/v1/live/dashboards/order-status"
        async with client.stream("GET", url, headers=reader | SSE) as response:
            stream = changes(response)
            _, before = await next_change(stream)
            assert before["total"] == 0
            product = {"sku": "LIVE-2", "name": "live", "price": "1.00", "category": "live"}
            await api.post("/api/v1/products", json=product, headers=auth())
            await api.post("/api/v1/stock/LIVE-2/receive", json={"quantity": 5}, headers=auth())
            body = {
                "customer_id": "00000000-0000-4000-8000-000000000002",
                "lines": [{"sku": "LIVE-2", "quantity": 1}],
            }
            await api.post("/api/v1/orders", json=body, headers=auth())
            async with running(read_settings, "orders"):
                _, after = await next_change(stream)
            assert after["total"] == 1 and after["counts"]["pending"] == 1
        bad = await client.get(url, headers=reader | SSE | {"Last-Event-ID": "nope"})
        assert bad.status_code == 422
        assert (
            await client.get("/api/v1/live/orders/not-a-uuid", headers=reader)
        ).status_code == 422
        assert (await client.get(url, headers=auth("commands:write"))).status_code == 403
