"""The feed as pages: commit order, filters that move on, long-polls, bad input, scopes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from eventstore.postgres import PostgresEventStore
from tests.e2e.helpers import new_sku

FEED = "/api/v1/feed"
Auth = Callable[..., dict[str, str]]


async def register(api: httpx.AsyncClient, auth: Auth, sku: str) -> str:
    """Register a product and receive stock for it; the stock command's position token."""
    body = {"sku": sku, "name": sku, "price": "1.00", "category": "feed"}
    assert (await api.post("/api/v1/products", json=body, headers=auth())).status_code == 201
    received = await api.post(f"/api/v1/stock/{sku}/receive", json={"quantity": 3}, headers=auth())
    assert received.status_code == 201, received.text
    return str(received.json()["position"])


async def everything(api: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[Any]:
    """Every event the feed shows with these filters, page by page."""
    events: list[Any] = []
    after = None
    while True:
        page = await api.get(FEED, params={**params, "after": after or ""}, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        events += body["events"]
        if not body["events"] and body["next"] == after:
            return events
        after = body["next"]


async def test_pages_hold_every_event_in_commit_order_and_filters_move_on(
    api: httpx.AsyncClient, auth: Auth, pg_store: PostgresEventStore, clean_db: None
) -> None:
    for _ in range(7):
        await register(api, auth, new_sku())
    reader = auth("events:read")
    shown = await everything(api, reader, limit=3)
    stored = await pg_store.read_all(limit=1000)
    assert [e["position"] for e in shown] == [e.token for e in stored] and len(shown) == 21
    first = shown[0]
    assert set(first) >= {"position", "stream_id", "stream_type", "version", "type", "data"}
    assert {"metadata", "recorded_at", "event_id"} <= set(first)
    assert first["metadata"]["actor"] == "alice"
    received = await everything(api, reader, types="StockReceived", limit=2)
    assert [e["type"] for e in received] == ["StockReceived"] * 7
    stock = await everything(api, reader, stream_types="StockItem,Nothing")
    assert {e["stream_type"] for e in stock} == {"StockItem"} and len(stock) == 14
    # A filter that matches nothing still moves `next` to the head, a bounded scan at a time.
    none = await api.get(FEED, params={"types": "OrderShipped", "limit": 1000}, headers=reader)
    assert none.json() == {"events": [], "next": stored[-1].token}


async def test_a_long_poll_returns_when_an_event_commits(
    api: httpx.AsyncClient, auth: Auth, clean_db: None
) -> None:
    head = await register(api, auth, new_sku())
    reader = auth("events:read")
    started = time.monotonic()
    poll = asyncio.create_task(
        api.get(FEED, params={"after": head, "wait": 10}, headers=reader, timeout=15)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()  # nothing after the head yet: it waits
    sku = new_sku()
    await register(api, auth, sku)
    answer = await poll
    assert time.monotonic() - started < 5
    assert answer.json()["events"][0]["data"]["sku"] == sku
    quiet = await api.get(FEED, params={"after": answer.json()["next"], "wait": 0.3, "limit": 1})
    assert quiet.status_code == 401  # no token: nothing waits for an anonymous caller
    idle = await api.get(
        FEED, params={"after": (await register(api, auth, new_sku())), "wait": 0.3}, headers=reader
    )
    assert idle.json()["events"] == [] and idle.json()["next"] is not None


async def test_bad_input_is_a_422_and_scopes_are_checked(
    api: httpx.AsyncClient, auth: Auth
) -> None:
    reader = auth("events:read")
    for params in (
        {"after": "nope"},
        {"after": "0" * 31},
        {"limit": 1001},
        {"limit": 0},
        {"wait": 31},
        {"types": "Order Placed"},
        {"types": ",".join(f"T{i}" for i in range(51))},
    ):
        answer = await api.get(FEED, params=params, headers=reader)
        assert answer.status_code == 422, (params, answer.text)
        assert "detail" in answer.json()
    sse = reader | {"Accept": "text/event-stream", "Last-Event-ID": "garbage"}
    assert (await api.get(FEED, headers=sse)).status_code == 422
    assert (await api.get(FEED, headers=auth("ops:admin"))).status_code == 200
    assert (await api.get(FEED, headers=auth("commands:write"))).status_code == 403
    assert (await api.get(FEED, headers=auth("queries:read"))).status_code == 403
