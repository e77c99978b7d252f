"""Figure 4: projection catch-up and rebuild against the MongoDB server's raw bulk-write ceiling.

One seeded store (4 events per SKU, batch-appended). Each repetition projects `products` from
zero into an empty MongoDB database, writes the very documents it produced with plain unordered
`bulk_write`s in as many calls (the ceiling), rebuilds blue/green beside the live generation,
then reads the store through PostgresEventStore + EventCodec and with raw asyncpg keyset paging.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
from pymongo import AsyncMongoClient, InsertOne
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.context import BenchContext
from bench.core import Figure, Stopwatch, check, repeat
from bench.store_reads import read_run
from core import heap
from core.db import JSON_OPTIONS
from domain.catalog import Product
from domain.inventory import StockItem
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.serialization import EventCodec
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import INDEXES, build, ensure_indexes
from workers import rebuild as rebuild_module
from workers.bootstrap import read_side_over
from workers.runner import CatchUp

Db = AsyncDatabase[dict[str, Any]]
EVENTS_PER_SKU = 4
APPEND_STREAMS = 500  # streams per seeding append (2 per SKU)
BATCH = 1000  # events per catch-up / rebuild / read page
UNITS = {
    "catch-up (products, from zero)": "events/s",
    "rebuild (products, blue/green)": "events/s",
    "bulk_write ceiling (same documents)": "docs/s",
    "bulk_write ceiling, as events": "events/s",
    "read_all only": "events/s",
    "read_all + EventCodec.decode": "events/s",
    "raw asyncpg keyset read": "events/s",
}


async def seed(store: PostgresEventStore, events: int) -> int:
    """Register, rename and stock products with batch appends; the number of events written."""
    codec, appends = EventCodec(), []
    for i in range(math.ceil(events / EVENTS_PER_SKU)):
        sku = f"BENCH-{i:07d}"
        product = Product.register(sku, f"Item {i}", "", Decimal("1.00") + i % 7, "bench")
        product.rename(f"Item {i} (v2)")
        item = StockItem.open(sku)
        item.receive(10 + i % 5)
        for aggregate, kind in ((product, "Product"), (item, "StockItem")):
            encoded = [codec.encode(e) for e in aggregate.collect_events()]
            appends.append(StreamAppend(aggregate.id, kind, 0, encoded))
    for start in range(0, len(appends), APPEND_STREAMS):
        await store.append(*appends[start : start + APPEND_STREAMS])
    return len(appends) * 2


async def catch_up(
    store: PostgresEventStore, db: Db, projection: str = "products"
) -> tuple[int, float]:
    """Project `projection` from zero into `db` (indexes first, as a worker does); events, s."""
    await ensure_indexes(db, projection)
    runner = CatchUp(store, Checkpoints(db), ParkedEvents(db), batch_size=BATCH)
    with Stopwatch() as watch:
        events = await runner.run(build(projection, db))
    return events, watch.seconds


async def bulk_write_ceiling(
    db: Db, docs: list[dict[str, Any]], calls: int, logical: str = "products"
) -> float:
    """Seconds to insert `docs` into an empty copy of `logical` (its indexes) in `calls` writes."""
    collection = db[f"ceiling_{logical}"]
    if INDEXES.get(logical):
        await collection.create_indexes(INDEXES[logical])
    per_call = math.ceil(len(docs) / max(1, calls))
    with Stopwatch() as watch:
        for start in range(0, len(docs), per_call):
            ops = [InsertOne(doc) for doc in docs[start : start + per_call]]
            await collection.bulk_write(ops, ordered=False)
    return watch.seconds


@contextlib.contextmanager
def no_retire_grace() -> Iterator[None]:
    """Drop the old generation at once: the grace is a sleep for readers, and nobody reads here."""
    saved = rebuild_module.OLD_GENERATION_GRACE_SECONDS
    rebuild_module.OLD_GENERATION_GRACE_SECONDS = 0.0
    try:
        yield
    finally:
        rebuild_module.OLD_GENERATION_GRACE_SECONDS = saved


@contextlib.contextmanager
def settled_like_a_worker() -> Iterator[None]:
    """This process's collector as a worker's is at boot (core.heap.settle); then as it was."""
    threshold = gc.get_threshold()
    heap.settle()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def timed_rebuild(engine: AsyncEngine, db: Db) -> tuple[int, float]:
    """Rebuild `products` beside its live generation (swap included); events, seconds."""
    with no_retire_grace(), Stopwatch() as watch:
        side = read_side_over(engine, db)
        result = await rebuild_module.rebuild("products", side, batch_size=BATCH)
    return result.events, watch.seconds


@dataclasses.dataclass
class Clients:
    """MongoDB clients made as the product makes them for each side of the figure.

    A worker's subscribers write without retryable writes (every write is guarded on its own);
    a rebuild runs as an ops job, whose client keeps them. The ceiling shares the worker's.
    """

    worker: AsyncMongoClient[dict[str, Any]]
    job: AsyncMongoClient[dict[str, Any]]

    @classmethod
    def open(cls, url: str) -> Clients:
        """Both clients, on the server at `url`."""
        worker: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=True, retryWrites=False
        )
        return cls(worker, AsyncMongoClient(url, tz_aware=True))

    async def close(self) -> None:
        """Close both."""
        await self.worker.close()
        await self.job.close()


async def projection_run(store: PostgresEventStore, mongo: Clients, total: int) -> dict[str, float]:
    """Catch-up, ceiling and rebuild in a fresh MongoDB database; their rates."""
    name = f"bench_fig4_{uuid.uuid4().hex[:10]}"
    db = mongo.worker[name]
    try:
        events, seconds = await catch_up(store, db)
        check("catch-up", events, total)
        docs = [doc async for doc in db["products"].find({})]
        ceiling = await bulk_write_ceiling(db, docs, math.ceil(total / BATCH))
        rebuilt, rebuild_seconds = await timed_rebuild(store.engine, mongo.job[name])
        check("rebuild", rebuilt, total)
    finally:
        await mongo.worker.drop_database(name)
    return {
        "catch-up (products, from zero)": total / seconds,
        "rebuild (products, blue/green)": total / rebuild_seconds,
        "bulk_write ceiling (same documents)": len(docs) / ceiling,
        "bulk_write ceiling, as events": total / ceiling,
    }


def conclude(figure: Figure, total: int, heavy_runs: int) -> None:
    """Ratios, targets and notes."""
    _targets(figure, _ratios(figure))
    figure.notes += _notes(total, heavy_runs)


def _ratios(figure: Figure) -> float:
    """Each rate against its ceiling or floor; the catch-up's, which a target judges."""
    catch_up_ratio = figure.ratio(
        "catch-up / bulk_write ceiling",
        "catch-up (products, from zero)",
        "bulk_write ceiling, as events",
    )
    figure.ratio(
        "rebuild / bulk_write ceiling",
        "rebuild (products, blue/green)",
        "bulk_write ceiling, as events",
    )
    figure.ratio(
        "read_all + decode / raw keyset", "read_all + EventCodec.decode", "raw asyncpg keyset read"
    )
    return catch_up_ratio


def _targets(figure: Figure, catch_up_ratio: float) -> None:
    """The catch-up and read targets, met or not."""
    figure.target(
        "projection catch-up >= 80 % of the MongoDB bulk_write ceiling",
        catch_up_ratio >= 0.8,
        f"{catch_up_ratio:.0%} ({figure.median('catch-up (products, from zero)'):,.0f} vs "
        f"{figure.median('bulk_write ceiling, as events'):,.0f} events/s)",
    )
    decode = figure.median("read_all + EventCodec.decode")
    figure.target(
        "event read + decode >= 100k events/s",
        decode >= 100_000,
        f"{decode:,.0f} events/s",
    )


def _notes(total: int, heavy_runs: int) -> list[str]:
    """How the figure was measured."""
    return [
        f"{total:,} events ({total // EVENTS_PER_SKU:,} products: registered, renamed, stock "
        f"opened and received), pages of {BATCH} events; every run checks it saw all of them.",
        "Catch-up and rebuild run in this process (CatchUp / workers.rebuild), each into an empty "
        "MongoDB database with the query indexes created first; catch-up and the ceiling on a "
        "client made as a worker makes its own (no retryable writes), the rebuild on one made "
        "as an ops job makes its own (retryable writes). Catch-up, rebuild, the ceiling "
        "and the reads all run with this process's garbage collector set as a worker sets its "
        "own at boot (core.heap.settle: start-up objects frozen, young generation collected "
        "every 10,000 allocations); before that change the same reads ran at about half the "
        "rate here.",
        "Ceiling: the catch-up's final documents inserted into an empty collection with the same "
        "indexes, unordered InsertOne bulk_writes, as many calls as catch-up batches; "
        "'as events' = events / ceiling seconds.",
        "Rebuild: new generation from zero (indexes first), handoff, catch-up, alias swap, "
        "old generation dropped; its 2 s grace before the drop (a sleep for readers, no work) "
        "is set to 0 here.",
        f"Catch-up and rebuild: {heavy_runs} run(s) without warm-up (each starts from an empty "
        "database; a small insert warms the MongoDB connection); reads: the mode's warm-up and "
        f"{heavy_runs} run(s).",
        "Raw keyset: the same columns and keyset order as read_all, rows only (jsonb left as "
        "text, no watermark filter).",
    ]


async def warm_up(mongo: AsyncMongoClient[dict[str, Any]]) -> None:
    """Open MongoDB connections and touch an indexed collection once."""
    name = f"bench_fig4_warm_{uuid.uuid4().hex[:6]}"
    await mongo[name]["warm"].insert_many([{"n": n} for n in range(100)])
    await mongo.drop_database(name)


async def run(ctx: BenchContext) -> Figure:
    """Figure 4."""
    figure = Figure(4, "Projection catch-up and rebuild")
    # Catch-up + ceiling + rebuild of 100k events takes about a minute: at most 3 runs of it.
    heavy = dataclasses.replace(ctx.mode, warmups=0, repetitions=min(3, ctx.mode.repetitions))
    reads = dataclasses.replace(ctx.mode, repetitions=heavy.repetitions)
    url = await ctx.fresh_database()
    engine = create_async_engine(url, pool_size=4, **JSON_OPTIONS)
    mongo = Clients.open(ctx.mongodb_url)
    conn = await asyncpg.connect(ctx.plain(url))
    try:
        store = PostgresEventStore(engine)
        total = await seed(store, ctx.mode.count(100_000))
        await warm_up(mongo.worker)
        await warm_up(mongo.job)
        with settled_like_a_worker():
            await repeat(heavy, lambda: projection_run(store, mongo, total), figure, UNITS)
            await repeat(reads, lambda: read_run(store, conn, total, BATCH), figure, UNITS)
    finally:
        await conn.close()
        await mongo.close()
        await dispose(engine)
    conclude(figure, total, heavy.repetitions)
    return figure
