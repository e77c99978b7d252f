"""Figure 7: the cost of one command, and the aggregate's memory, against its stream's length.

One stock item stream per length, built with the batch append. Each measurement starts a fresh
command API process: one command on another SKU opens its connections and warms its code, then
the first command on the measured SKU is timed (it reads and folds the stream: cold), then a
second one (warm). Without snapshots (SNAPSHOT_INTERVAL=0) first; then a command API at the
default interval writes each long stream's snapshot, and the cold commands are timed again.
"""

from __future__ import annotations

import dataclasses
import time
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from bench import snapshot_tail
from bench.command_api import bench_token
from bench.context import BenchContext
from bench.core import Figure, Mode
from bench.http import Client
from bench.snapshot_tail import Tail, bounded_tail
from bench.stock_streams import (
    DEFAULT_INTERVAL,
    aggregate_bytes,
    build_stream,
    wait_for_snapshot,
)
from core.db import JSON_OPTIONS
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore

LENGTHS = {"smoke": (10, 1_000), "quick": (10, 1_000, 10_000), "full": (10, 1_000, 10_000, 100_000)}
COLD_RATIO = 3.0  # the bound: top length's cold command ≤ 3 times the 10-event one's
FLAT = 1.5  # "memory flat": the top length's aggregate ≤ 1.5 times the 10-event one's
WARM_SKU = "LEN-WARMUP"


def sku(length: int) -> str:
    """The SKU whose stream has `length` events."""
    return f"LEN-{length:06d}"


def label(length: int) -> str:
    """A length as the measurements name it."""
    return f"{length:,} events"


@dataclasses.dataclass
class Streams:
    """The streams of one run and how to reach a command API over them."""

    ctx: BenchContext
    database: str
    ids: dict[int, UUID]
    token: str

    async def receive(self, client: Client, item: str) -> float:
        """Receive one unit of `item`; the command's milliseconds."""
        headers = {"Authorization": f"Bearer {self.token}"}
        body = {"quantity": 1, "reference": "figure 7"}
        started = time.perf_counter()
        response = await client.post(f"/api/v1/stock/{item}/receive", json=body, headers=headers)
        elapsed = 1000 * (time.perf_counter() - started)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"receive {item}: {response.status_code} {response.text}")
        return elapsed

    async def cold_and_warm(self, length: int, interval: int) -> tuple[float, float]:
        """In a fresh command API process: the first command on the stream, then a second."""
        env = self.ctx.env(self.database, "bench_fig7", SNAPSHOT_INTERVAL=str(interval))
        with self.ctx.server("command_api.main:app", env) as base:
            client = Client(base)
            try:
                await self.receive(client, WARM_SKU)
                cold = await self.receive(client, sku(length))
                return cold, await self.receive(client, sku(length))
            finally:
                await client.aclose()

    async def take_snapshots(self, conn: asyncpg.Connection, interval: int) -> dict[int, int]:
        """One command on each stream of ≥ `interval` events, then wait for its snapshot."""
        long = [n for n in self.ids if n >= interval]
        env = self.ctx.env(self.database, "bench_fig7", SNAPSHOT_INTERVAL=str(interval))
        with self.ctx.server("command_api.main:app", env) as base:
            client = Client(base)
            try:
                for length in long:
                    await self.receive(client, sku(length))
            finally:
                await client.aclose()
            return {n: await wait_for_snapshot(conn, self.ids[n]) for n in long}


async def measure_commands(streams: Streams, figure: Figure, mode: Mode, side: str) -> None:
    """Cold and warm command times at every length, `mode.repetitions` fresh processes each."""
    interval = 0 if side == "no snapshots" else DEFAULT_INTERVAL
    for length in streams.ids:
        cold = figure.measurement(f"cold command, {label(length)}, {side}", "ms")
        warm = figure.measurement(f"warm command, {label(length)}, {side}", "ms")
        for _ in range(mode.repetitions):
            first, second = await streams.cold_and_warm(length, interval)
            cold.values.append(first)
            warm.values.append(second)


async def measure_memory(
    store: PostgresEventStore, streams: Streams, figure: Figure, side: str
) -> None:
    """The deep size of each stock item loaded cold by a fresh repository."""
    interval = 0 if side == "no snapshots" else DEFAULT_INTERVAL
    for length, stream_id in streams.ids.items():
        size = await aggregate_bytes(store, stream_id, interval)
        figure.measurement(f"aggregate memory, {label(length)}, {side}", "KiB").values.append(
            size / 1024
        )


def conclude(figure: Figure, lengths: tuple[int, ...], snapshots: dict[int, Tail]) -> None:
    """Ratios, the two targets and the notes."""
    low, top = label(lengths[0]), label(lengths[-1])
    short, long = f"{lengths[0]:,}-event", f"{lengths[-1]:,}-event"
    ratios = {}
    for side in ("no snapshots", "snapshots"):
        ratios[side] = figure.ratio(
            f"cold command {top} / {low}, {side}",
            f"cold command, {top}, {side}",
            f"cold command, {low}, {side}",
        )
        figure.ratio(
            f"memory {top} / {low}, {side}",
            f"aggregate memory, {top}, {side}",
            f"aggregate memory, {low}, {side}",
        )
    cold_top, cold_low = (figure.median(f"cold command, {n}, snapshots") for n in (top, low))
    figure.target(
        f"with snapshots, cold command on the {long} stream ≤ {COLD_RATIO:g} times the {short} one",
        ratios["snapshots"] <= COLD_RATIO,
        f"{ratios['snapshots']:.2f} times ({cold_top:,.1f} vs {cold_low:,.1f} ms); "
        f"without snapshots {ratios['no snapshots']:.2f} times",
    )
    memory = [
        figure.ratios[f"memory {top} / {low}, {side}"] for side in ("no snapshots", "snapshots")
    ]
    figure.target(
        f"aggregate memory flat: the {long} stock item ≤ {FLAT:g} times the {short} one",
        max(memory) <= FLAT,
        f"{memory[0]:.2f} times without snapshots, {memory[1]:.2f} times with "
        f"({figure.median(f'aggregate memory, {top}, snapshots'):,.1f} KiB)",
    )
    figure.notes += notes(lengths, snapshots)


def notes(lengths: tuple[int, ...], snapshots: dict[int, Tail]) -> list[str]:
    """How the figure was measured."""
    taken = (
        "snapshots taken at versions "
        + ", ".join(f"{t.snapshot:,} ({label(n)})" for n, t in snapshots.items())
        + "; before the cold runs a cold load of each read its snapshot and "
        + ", ".join(f"{t.events:,}" for t in snapshots.values())
        + " events after it"
    )
    return [
        f"One stock item stream per length ({', '.join(f'{n:,}' for n in lengths)} events), "
        "built with PostgresEventStore.append in batches: opened, received, then a reservation "
        "and its release for a new order id each; every measured command (receive 1 unit) adds "
        "an event, so a stream is a few events longer at its later repetitions.",
        "Cold: the first command on the SKU in a fresh command API process (uvicorn started, "
        "/health answered, one command on another SKU to open connections and warm the code); "
        "warm: the next command on the same SKU (the aggregate is in the process's cache). "
        "Each repetition is its own process; medians of the repetitions.",
        f"'no snapshots': SNAPSHOT_INTERVAL=0, measured before any snapshot exists; "
        f"'snapshots': SNAPSHOT_INTERVAL={DEFAULT_INTERVAL} (the default), after one command "
        f"on each stream of ≥ {DEFAULT_INTERVAL} events in another process wrote its "
        f"snapshot; {taken}.",
        "Aggregate memory: deep size (sys.getsizeof over the object graph, each object once, "
        "classes and functions excluded) of the StockItem loaded cold by a fresh repository "
        "from workers.bootstrap.repository, in this process.",
        *(snapshot_tail.notes(label(lengths[-1])) if snapshots is not None else []),
    ]


async def run(ctx: BenchContext) -> Figure:
    """Figure 7."""
    figure, lengths = Figure(7, "Cost against stream length"), LENGTHS[ctx.mode.name]
    url = await ctx.fresh_database()
    engine = create_async_engine(url, pool_size=2, **JSON_OPTIONS)
    conn = await asyncpg.connect(ctx.plain(url))
    try:
        store = PostgresEventStore(engine)
        ids = {n: await build_stream(store, sku(n), n) for n in lengths}
        await build_stream(store, WARM_SKU, 2)
        streams = Streams(ctx, url, ids, bench_token(["commands:write"]))
        await measure_memory(store, streams, figure, "no snapshots")
        await measure_commands(streams, figure, ctx.mode, "no snapshots")
        taken = await streams.take_snapshots(conn, DEFAULT_INTERVAL)
        snapshots = {n: await bounded_tail(store, ids[n], DEFAULT_INTERVAL) for n in taken}
        await measure_memory(store, streams, figure, "snapshots")
        await measure_commands(streams, figure, ctx.mode, "snapshots")
        await snapshot_tail.measure(store, ids[lengths[-1]], figure, label(lengths[-1]))
    finally:
        await conn.close()
        await dispose(engine)
    conclude(figure, lengths, snapshots)
    return figure
