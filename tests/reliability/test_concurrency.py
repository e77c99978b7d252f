"""16 clients x mixed commands on overlapping streams, for 30 s (2 min with --long).

Afterwards, from the store itself: every 2xx's events are there exactly once, every 409/412 and
every idempotent replay appended nothing, stock never went negative nor below what was reserved
at any point of any stream, and no order was both confirmed and rejected.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from domain.values import product_id
from eventstore.postgres import PostgresEventStore
from eventstore.serialization import EventCodec
from tests.reliability.faults import Db, settled, workers

Auth = Callable[..., dict[str, str]]
SKUS = ["CONC-A", "CONC-B", "CONC-C", "CONC-D", "CONC-E"]
CLIENTS = 16
SUBJECT = "load-client"


@dataclass
class Sent:
    """One command and its answer."""

    op: str
    status: int
    request_id: str
    stream_id: str | None
    version: int | None
    replayed: bool


@dataclass
class Load:
    """The clients' shared view: answers so far and the orders placed."""

    api: httpx.AsyncClient
    headers: dict[str, str]
    sent: list[Sent] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    keys: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def post(
        self, op: str, path: str, body: dict[str, Any], extra: dict[str, str] | None = None
    ) -> httpx.Response:
        """Send one command and record the answer."""
        response = await self.api.post(path, json=body, headers={**self.headers, **(extra or {})})
        payload = response.json() if response.status_code < 300 else {}
        self.sent.append(
            Sent(
                op,
                response.status_code,
                response.headers["x-request-id"],
                payload.get("id"),
                payload.get("version"),
                response.headers.get("idempotent-replayed") == "true",
            )
        )
        return response


async def client(load: Load, seed: int, until: float) -> None:
    """One client: a random mix of every command on the shared SKUs and orders."""
    rng = random.Random(seed)
    while time.monotonic() < until:
        # A pause per command keeps the volume one worker on this machine projects in time.
        await asyncio.sleep(rng.uniform(0, 0.04))
        sku, roll = rng.choice(SKUS), rng.random()
        if roll < 0.35:
            lines = [{"sku": s, "quantity": rng.randint(1, 4)} for s in rng.sample(SKUS, 2)]
            body = {"customer_id": str(uuid.uuid4()), "lines": lines[: rng.randint(1, 2)]}
            key = uuid.uuid4().hex
            response = await load.post("place", "/api/v1/orders", body, {"Idempotency-Key": key})
            if response.status_code == 201:
                load.orders.append(response.json()["id"])
                load.keys.append((key, "/api/v1/orders", body))
        elif roll < 0.50:
            await load.post(
                "receive", f"/api/v1/stock/{sku}/receive", {"quantity": rng.randint(1, 6)}
            )
        elif roll < 0.60:
            body = {"delta": rng.randint(-6, 3), "reason": "count"}
            await load.post("adjust", f"/api/v1/stock/{sku}/adjust", body)
        elif roll < 0.70 and load.orders:
            body = {"reason": "changed my mind"}
            await load.post("cancel", f"/api/v1/orders/{rng.choice(load.orders)}/cancel", body)
        elif roll < 0.78 and load.orders:
            await load.post("ship", f"/api/v1/orders/{rng.choice(load.orders)}/ship", {})
        elif roll < 0.88:
            # A stale or current If-Match: 412 when another client moved the product on.
            match = {"If-Match": f'"{rng.randint(1, 40)}"'}
            body = {"price": f"{rng.randint(100, 999) / 100:.2f}"}
            await load.post("reprice", f"/api/v1/products/{product_id(sku)}/reprice", body, match)
        elif load.keys:
            # The same Idempotency-Key again: the first answer, replayed, nothing appended.
            key, path, body = rng.choice(load.keys)
            await load.post("repeat", path, body, {"Idempotency-Key": key})


@pytest.fixture
def duration(long_form: bool) -> float:
    """30 s normally, 2 minutes in the long form."""
    return 120.0 if long_form else 30.0


async def test_sixteen_clients_keep_every_invariant(
    read_settings: Settings,
    clean_db: None,
    engine: AsyncEngine,
    mongo_db: Db,
    api: httpx.AsyncClient,
    auth: Auth,
    duration: float,
    tmp_path: Path,
) -> None:
    """Mixed commands from 16 clients with a worker confirming and rejecting orders."""
    load = Load(api, auth(sub=SUBJECT))
    for sku in SKUS:
        body = {"sku": sku, "name": sku, "price": "5.00", "category": "concurrency"}
        assert (await load.post("register", "/api/v1/products", body)).status_code == 201
        await load.post("receive", f"/api/v1/stock/{sku}/receive", {"quantity": 30})
    with workers(read_settings, tmp_path):
        until = time.monotonic() + duration
        await asyncio.gather(*(client(load, seed, until) for seed in range(CLIENTS)))
        await settled(engine, mongo_db, seconds=180)
        events = await PostgresEventStore(engine).read_all(None, limit=10_000_000)
        stock_view = {doc["sku"]: doc async for doc in mongo_db["stock"].find({})}

    statuses = Counter(s.status for s in load.sent)
    decided = Counter(e.type for e in events if e.type in ("OrderConfirmed", "OrderRejected"))
    figures = {"commands": len(load.sent), "statuses": dict(sorted(statuses.items()))}
    figures |= {"replayed": sum(s.replayed for s in load.sent), "events": len(events), **decided}
    print(f"\nconcurrency figures: {json.dumps(figures)}")  # for docs/reliability.md (-s)
    assert not [s for s in load.sent if s.status >= 500], statuses
    # The load did what it is meant to: conflicts, refusals and replays all happened.
    assert statuses[409] and statuses[412] and any(s.replayed for s in load.sent), statuses
    assert len(load.sent) >= CLIENTS * 10, statuses

    await assert_each_success_stored_once(engine, load)
    assert_stock_always_valid(events)
    assert_each_order_decided_once(events)
    assert_stock_view_matches_the_store(events, stock_view)


async def assert_each_success_stored_once(engine: AsyncEngine, load: Load) -> None:
    """The load's events are exactly those of its 2xx, non-replayed answers, once each."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT metadata->>'request_id' AS request_id, stream_id, max(version) AS v, "
                    "count(*) AS n, count(DISTINCT stream_id) AS streams "
                    "FROM events WHERE metadata->>'actor' = :actor "
                    "GROUP BY metadata->>'request_id', stream_id"
                ),
                {"actor": SUBJECT},
            )
        ).all()
        versions = {
            (str(row.stream_id), row.version)
            for row in (await conn.execute(sa.text("SELECT stream_id, version FROM events")))
        }
    stored = {row.request_id: (str(row.stream_id), row.v) for row in rows}
    assert len(stored) == len(rows), "one request appended to two streams"
    answered = {
        s.request_id: (s.stream_id, s.version)
        for s in load.sent
        if 200 <= s.status < 300 and not s.replayed
    }
    # Every stored request was answered 2xx, at the version it stored (nothing doubled: the
    # UNIQUE (stream, version) key and one request id per append).
    assert set(stored) <= set(answered), set(stored) - set(answered)
    assert {rid: answered[rid] for rid in stored} == stored
    # A 2xx that stored nothing is a no-op (e.g. shipping stock already shipped): it names a
    # version its stream really has.
    for rid in set(answered) - set(stored):
        assert answered[rid] in versions, (rid, answered[rid])
    refused = {s.request_id for s in load.sent if s.status >= 400 or s.replayed}
    assert not refused & set(stored), "a refused or replayed command appended events"


def _fold(events: list[Any], stream_type: str) -> dict[str, list[Any]]:
    by_stream: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        if event.stream_type == stream_type:
            by_stream[str(event.stream_id)].append(event)
    return {k: sorted(v, key=lambda e: e.version) for k, v in by_stream.items()}


def assert_stock_always_valid(events: list[Any]) -> None:
    """Replay every stock stream event by event: 0 <= reserved <= on hand after each one."""
    codec = EventCodec()
    for stream, stored in _fold(events, "StockItem").items():
        item: Any = None
        for event in stored:
            item = codec.decode(event).mutate(item)
            assert 0 <= item.reserved <= item.on_hand, (stream, event.version, event.type)


def assert_each_order_decided_once(events: list[Any]) -> None:
    """No order is both confirmed and rejected, nor decided twice."""
    for stream, stored in _fold(events, "Order").items():
        outcomes = [e.type for e in stored if e.type in ("OrderConfirmed", "OrderRejected")]
        assert len(outcomes) <= 1, (stream, outcomes)


def assert_stock_view_matches_the_store(events: list[Any], view: dict[str, Any]) -> None:
    """The stock read model holds the stored totals."""
    codec = EventCodec()
    for stored in _fold(events, "StockItem").values():
        item: Any = None
        for event in stored:
            item = codec.decode(event).mutate(item)
        doc = view[item.sku]
        assert (doc["on_hand"], doc["reserved"]) == (item.on_hand, item.reserved), doc
