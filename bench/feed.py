"""Figure 9: the event feed and live dashboards, each against a ceiling of the same run.

(1) Throughput: a shop's history (bench/history.py) is batch-appended, then read whole through
`GET /api/v1/feed?limit=1000` by one HTTP consumer, beside `read_all` + decode in this process
on the same store. (2) Delivery: one SSE consumer follows the feed from the head while product
registrations go out open-loop at 200/s; an event's delivery time is its arrival on the stream
minus its commit (`recorded_at`, same machine's clock). (3) Live dashboards
(bench/live_dashboards.py): 200 SSE clients on the query API while orders are placed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench import live_dashboards
from bench.context import BENCH_SECRET, BenchContext
from bench.core import Figure, Stopwatch, check, open_loop, percentile, repeat
from bench.history import history
from bench.store_reads import read_all
from core.auth import mint_token
from core.db import JSON_OPTIONS
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore

RATE = 200.0  # commands per second, open loop (the issue's)
SSE = {"Accept": "text/event-stream"}
SETTLE_SECONDS = 2.0  # after the last command, for the last deliveries
PAGE = 1000
UNITS = {
    "feed pages (one HTTP consumer)": "events/s",
    "read_all + decode (in process)": "events/s",
}
DELIVERY_UNITS = {
    "SSE delivery p50 (commit -> event)": "ms",
    "SSE delivery p99 (commit -> event)": "ms",
    "commands achieved": "commands/s",
    "events not delivered": "events",
}


@dataclass
class Deliveries:
    """Which commands were acknowledged, and when each event was committed and arrived.

    Delivery is measured from the event's commit (its `recorded_at`, the store's clock on this
    same machine) to its arrival: a command's 2xx can reach its client after the event has
    reached the stream's, which made "2xx -> event" negative under load.
    """

    acknowledged: set[str] = field(default_factory=set)
    arrived: dict[str, float] = field(default_factory=dict)  # wall clock, seconds
    committed: dict[str, float] = field(default_factory=dict)  # recorded_at, seconds

    def latencies_ms(self) -> list[float]:
        """Arrival minus commit, for each acknowledged command whose event arrived."""
        return [
            (self.arrived[k] - self.committed[k]) * 1000
            for k in self.acknowledged
            if k in self.arrived
        ]


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(id, data) of each event of a stream."""
    event_id, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            yield event_id, data
            event_id, data = "", ""


async def through_the_feed(client: httpx.AsyncClient, total: int) -> tuple[float, str]:
    """Events/s read through the feed's pages from the origin; the head's token."""
    after, count = "", 0
    with Stopwatch() as watch:
        while True:
            answer = await client.get("/api/v1/feed", params={"after": after, "limit": PAGE})
            page = answer.json()
            if not page["events"]:
                break
            count, after = count + len(page["events"]), page["next"]
    check("events read through the feed", count, total)
    return total / watch.seconds, after


async def register(client: httpx.AsyncClient, deliveries: Deliveries, i: int) -> None:
    """One product registration; when its event's position was acknowledged."""
    body = {"sku": f"F9-{uuid.uuid4().hex[:12]}", "name": f"n{i}", "price": "1.00"}
    reply = await client.post("/api/v1/products", json=body | {"category": "bench"})
    if reply.status_code == 201:
        deliveries.acknowledged.add(reply.headers["x-position"])


async def follow(client: httpx.AsyncClient, after: str, deliveries: Deliveries) -> None:
    """Note each event's arrival on one SSE stream from `after` (until cancelled)."""
    headers = SSE | {"Last-Event-ID": after}
    async with client.stream("GET", "/api/v1/feed", headers=headers, timeout=None) as response:
        async for event_id, data in sse_events(response):
            deliveries.arrived[event_id] = time.time()
            recorded = json.loads(data)["recorded_at"]
            deliveries.committed[event_id] = datetime.fromisoformat(recorded).timestamp()


async def delivery_run(
    commands: httpx.AsyncClient, reader: httpx.AsyncClient, head: list[str], seconds: float
) -> dict[str, float]:
    """Commands at RATE for `seconds` while one SSE consumer follows from `head[0]`."""
    deliveries = Deliveries()
    following = asyncio.create_task(follow(reader, head[0], deliveries))
    await asyncio.sleep(0.3)  # connected and at the head
    await open_loop(RATE, seconds, lambda i: register(commands, deliveries, i))
    await asyncio.sleep(SETTLE_SECONDS)
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    if deliveries.arrived:
        head[0] = max(deliveries.arrived)  # the next run follows from here
    latencies = deliveries.latencies_ms()
    return {
        "SSE delivery p50 (commit -> event)": percentile(latencies, 50),
        "SSE delivery p99 (commit -> event)": percentile(latencies, 99),
        "commands achieved": len(deliveries.acknowledged) / seconds,
        "events not delivered": len(deliveries.acknowledged) - len(latencies),
    }


async def fill(url: str, total: int) -> tuple[PostgresEventStore, int]:
    """Append a history of about `total` events; the store and its count."""
    store, events = PostgresEventStore(create_async_engine(url, pool_size=2, **JSON_OPTIONS)), 0
    for batch in history(total):
        await store.append(*batch)
        events += sum(len(s.events) for s in batch)
    return store, events


async def feed_figures(ctx: BenchContext, figure: Figure) -> None:
    """Throughput and delivery, on a store holding a history."""
    url = await ctx.fresh_database()
    store, total = await fill(url, ctx.mode.count(200_000, floor=2_000))
    token = mint_token(BENCH_SECRET, "bench", ["commands:write", "events:read"])
    auth = {"Authorization": f"Bearer {token}"}
    head = [""]
    with ctx.server("command_api.main:app", ctx.env(url, "bench_fig9_unused")) as base:
        async with (
            httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as commands,
            httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as reader,
        ):

            async def throughput() -> dict[str, float]:
                feed_rate, head[0] = await through_the_feed(reader, total)
                events, seconds = await read_all(store, PAGE, decode=True)
                check("events read in process", events, total)
                return dict(zip(UNITS, (feed_rate, total / seconds), strict=True))

            await repeat(ctx.mode, throughput, figure, UNITS)
            light = dataclasses.replace(ctx.mode, repetitions=min(3, ctx.mode.repetitions))
            run = lambda: delivery_run(commands, reader, head, ctx.mode.seconds)  # noqa: E731
            await repeat(light, run, figure, DELIVERY_UNITS)
    await dispose(store.engine)


async def run(ctx: BenchContext) -> Figure:
    """Figure 9."""
    figure = Figure(9, "Event feed and live dashboards")
    await feed_figures(ctx, figure)
    await live_dashboards.measure(ctx, figure)
    conclude(figure, ctx.mode.seconds)
    return figure


def conclude(figure: Figure, seconds: float) -> None:
    """Targets and notes."""
    share = figure.ratio("feed / read_all + decode", *UNITS)
    figure.target(
        "feed throughput to one consumer >= 50% of read_all + decode",
        share >= 0.5,
        f"{share:.0%} ({figure.median(next(iter(UNITS))):,.0f} vs "
        f"{figure.median(list(UNITS)[1]):,.0f} events/s)",
    )
    p99 = figure.median("SSE delivery p99 (commit -> event)")
    achieved = figure.median("commands achieved")
    missing = figure.measurement("events not delivered", "events").high
    figure.target(
        f"delivery p99 <= 100 ms (commit -> SSE client) at {RATE:g} commands/s",
        p99 <= 100 and achieved >= 0.95 * RATE and missing == 0,
        f"p99 {p99:,.1f} ms, p50 {figure.median('SSE delivery p50 (commit -> event)'):,.1f} ms at "
        f"{achieved:,.0f} commands/s; up to {missing:,.0f} events per run not delivered",
    )
    live_dashboards.conclude(figure)
    figure.notes += [
        f"Throughput: pages of {PAGE} events (wait=0), one keep-alive httpx client, JSON parsed; "
        "the ceiling is the store's read_all + EventCodec.decode of the same pages in the "
        "benchmark's own process (no HTTP, no JSON).",
        f"Delivery: product registrations every {1000 / RATE:g} ms for {seconds:g} s per run "
        "(httpx, open loop); one SSE consumer (httpx stream) from the head; delivery = arrival "
        "of the event on the stream - its recorded_at (the commit's transaction time, from "
        "PostgreSQL on this machine). Command API as a child process.",
    ]
