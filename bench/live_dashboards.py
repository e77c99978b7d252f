"""Figure 9, part 3: 200 live dashboards on the query API while orders are placed.

Command API, query API and one worker run as child processes on a fresh store. A product is
stocked, then `DASHBOARDS` SSE clients follow `/api/v1/live/dashboards/order-status` while
orders go out open-loop at `ORDER_RATE`. The k-th acknowledged order's delivery to a client is
the time of the client's first answer with `total >= k` minus that order's 2xx (orders may commit
in another order than their 2xx: a small error either way). The query API's CPU over the run is
read from /proc.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import httpx

from bench.context import BENCH_SECRET, BenchContext, cpu_seconds
from bench.core import Figure, open_loop, percentile, repeat
from core.auth import mint_token

DASHBOARDS = 200
ORDER_RATE = 20.0  # orders per second
SETTLE_SECONDS = 3.0
ROUTE = "/api/v1/live/dashboards/order-status"
UNITS = {
    "dashboard delivery p50 (2xx -> answer)": "ms",
    "dashboard delivery p99 (2xx -> answer)": "ms",
    "dashboards that missed an order": "clients",
    "query API CPU": "cores",
}


@dataclasses.dataclass
class Dashboard:
    """What one client saw: (arrival time, total orders) per answer."""

    answers: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    first: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


async def watch(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    """Follow the dashboard (until cancelled)."""
    headers = {"Accept": "text/event-stream"}
    async with client.stream("GET", ROUTE, headers=headers, timeout=None) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                total = json.loads(line[6:])["total"]
                dashboard.answers.append((time.perf_counter(), total))
                dashboard.first.set()


async def place(client: httpx.AsyncClient, acknowledged: list[float]) -> None:
    """One order of the bench SKU; its 2xx time."""
    body = {"customer_id": str(uuid.uuid4()), "lines": [{"sku": "F9-LIVE", "quantity": 1}]}
    if (await client.post("/api/v1/orders", json=body)).status_code == 201:
        acknowledged.append(time.perf_counter())


def delays_ms(dashboard: Dashboard, acknowledged: list[float], base: int) -> list[float] | None:
    """Each order's delivery to this dashboard (None: some order never showed)."""
    delays, answers = [], iter(dashboard.answers)
    arrived, total = next(answers, (0.0, base))
    for k, at in enumerate(sorted(acknowledged), start=base + 1):
        while total < k:
            found = next(answers, None)
            if found is None:
                return None
            arrived, total = found
        delays.append(max(0.0, arrived - at) * 1000)
    return delays


async def dashboards_run(
    clients: list[httpx.AsyncClient], commands: httpx.AsyncClient, pid: int, seconds: float
) -> dict[str, float]:
    """Orders at ORDER_RATE for `seconds` while every dashboard listens."""
    dashboards = [Dashboard() for _ in clients]
    tasks = [asyncio.create_task(watch(c, d)) for c, d in zip(clients, dashboards, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(d.first.wait() for d in dashboards)), 60)
    base, acknowledged = dashboards[0].answers[-1][1], list[float]()
    cpu, started = cpu_seconds(pid), time.perf_counter()
    await open_loop(ORDER_RATE, seconds, lambda _: place(commands, acknowledged))
    await asyncio.sleep(SETTLE_SECONDS)
    cores = (cpu_seconds(pid) - cpu) / (time.perf_counter() - started)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    every = [delays_ms(d, acknowledged, base) for d in dashboards]
    delays = [delay for found in every if found is not None for delay in found]
    return dict(
        zip(
            UNITS,
            (percentile(delays, 50), percentile(delays, 99), sum(f is None for f in every), cores),
            strict=True,
        )
    )


async def stock(commands: httpx.AsyncClient) -> None:
    """The product every order takes, with stock for all of them."""
    body = {"sku": "F9-LIVE", "name": "live", "price": "1.00", "category": "bench"}
    assert (await commands.post("/api/v1/products", json=body)).status_code in (201, 409)
    received = await commands.post("/api/v1/stock/F9-LIVE/receive", json={"quantity": 10**9})
    assert received.status_code in (200, 201), received.text


async def measure(ctx: BenchContext, figure: Figure) -> None:
    """Start the servers and the worker on a fresh store; run the dashboards."""
    url, mongodb_db = await ctx.fresh_database(), f"bench_fig9_{uuid.uuid4().hex[:10]}"
    env = ctx.env(url, mongodb_db, LIVE_MAX_CLIENTS=str(DASHBOARDS + 10))
    scopes = ["commands:write", "queries:read"]
    auth = {"Authorization": f"Bearer {mint_token(BENCH_SECRET, 'bench', scopes)}"}
    limits = httpx.Limits(max_connections=DASHBOARDS)
    with (
        ctx.server("command_api.main:app", env) as command_api,
        ctx.server("query_api.main:app", env) as query_api,
        ctx.worker(env),
    ):
        commands = httpx.AsyncClient(base_url=command_api, headers=auth, timeout=30)
        clients = [
            httpx.AsyncClient(base_url=query_api, headers=auth, limits=limits)
            for _ in range(DASHBOARDS)
        ]
        try:
            await stock(commands)
            light = dataclasses.replace(ctx.mode, repetitions=min(3, ctx.mode.repetitions))
            pid, seconds = ctx.pids[query_api], ctx.mode.seconds
            await repeat(
                light, lambda: dashboards_run(clients, commands, pid, seconds), figure, UNITS
            )
        finally:
            await asyncio.gather(commands.aclose(), *(c.aclose() for c in clients))


def conclude(figure: Figure) -> None:
    """The dashboards' results (the issue sets no target: reported, and none may miss)."""
    missed = figure.measurement("dashboards that missed an order", "clients").high
    figure.target(
        f"{DASHBOARDS} live dashboards: every one sees every order",
        missed == 0,
        f"p99 {figure.median('dashboard delivery p99 (2xx -> answer)'):,.0f} ms, p50 "
        f"{figure.median('dashboard delivery p50 (2xx -> answer)'):,.0f} ms from an order's 2xx "
        f"to each dashboard's answer counting it; query API CPU "
        f"{figure.median('query API CPU'):.2f} cores",
    )
    figure.notes.append(
        f"Live dashboards: {DASHBOARDS} SSE clients (httpx, one connection each) on {ROUTE}; "
        f"orders of one line placed open-loop at {ORDER_RATE:g}/s; command API, query API and "
        "one worker as child processes; the query API reads the checkpoints every 100 ms and "
        "the dashboard once per change for all its listeners."
    )
