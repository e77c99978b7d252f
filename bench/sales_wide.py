"""Figure 8's wide day: one day with `skus` distinct SKUs sold, projected by `sales_daily`.

Orders of `LINES` SKUs each, placed and confirmed (OrderPlaced + OrderConfirmed) and
batch-appended within seconds, so on one day, cover `skus` distinct SKUs. `sales_daily` projects
them from zero into an empty MongoDB database (indexes first, as a worker does) on a client made
as a worker makes its own. Reported: the projection's rate, and the largest document of its
collections as BSON (what MongoDB's 16 MB limit applies to), beside the size of the day document
the design before per-(day, SKU) counters would have held (every SKU's figures in it), built
from the same figures.

`measure(ctx, skus)` is one run as {figure: value}, `UNITS` their units, `wide_day(ctx, skus)`
the same run as named fields, and `notes(skus)` says how they were taken, for the figure that
reports them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import bson
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.context import BenchContext
from bench.core import check
from bench.projections import BATCH, bulk_write_ceiling, catch_up
from core.db import JSON_OPTIONS
from domain.orders import Order
from domain.registry import stream_type_of
from domain.values import OrderLine
from eventstore.driver import dispose
from eventstore.inspect import PostgresInspector
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.serialization import EventCodec
from projections.collections import COLLECTIONS

Db = AsyncDatabase[dict[str, Any]]
LINES = 10  # SKUs per order: a large basket, well under the 100 lines an order may have
APPEND_STREAMS = 500  # orders per seeding append
RATE = "sales_daily catch-up, one wide day"
CEILING = "bulk_write ceiling (same documents), as events"
UNITS = {
    RATE: "events/s",
    CEILING: "events/s",
    "largest sales_daily document": "bytes",
    "day document": "bytes",
    "largest (day, SKU) document": "bytes",
    "day document holding every SKU (before)": "bytes",
}


def sku(n: int) -> str:
    """The n-th SKU of the wide day."""
    return f"WIDE-{n:07d}"


async def seed_orders(store: PostgresEventStore, skus: int) -> int:
    """Placed and confirmed orders covering `skus` distinct SKUs; the number of events."""
    codec, appends, kind = EventCodec(), [], stream_type_of(Order)
    for first in range(0, skus, LINES):
        lines = [
            OrderLine(sku(n), 1 + n % 3, Decimal("1.00") + n % 7)
            for n in range(first, min(first + LINES, skus))
        ]
        order = Order.place(uuid.uuid4(), lines)
        order.confirm()
        encoded = [codec.encode(e) for e in order.collect_events()]
        appends.append(StreamAppend(order.id, kind, 0, encoded))
    for start in range(0, len(appends), APPEND_STREAMS):
        await store.append(*appends[start : start + APPEND_STREAMS])
    return 2 * len(appends)


async def readable(engine: AsyncEngine, seconds: float = 60.0) -> None:
    """Wait until readers see the whole store: until the watermark passes its newest event.

    The watermark is the server's: a transaction anyone holds open on it, in any database,
    keeps the seeded events out of sight, and a catch-up timed then would see none.
    """
    inspector, deadline = PostgresInspector(engine), time.monotonic() + seconds
    while True:
        head = await inspector.head()
        if head.position is None or head.watermark_xid > head.position.transaction_id:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the watermark stayed behind the store for {seconds:.0f} s")
        await asyncio.sleep(0.05)


async def largest(db: Db, collection: str) -> int:
    """The largest document of a collection, in BSON bytes (0 if it is empty)."""
    pipeline = [{"$group": {"_id": None, "size": {"$max": {"$bsonSize": "$$ROOT"}}}}]
    rows = [row async for row in await db[collection].aggregate(pipeline)]
    return int(rows[0]["size"]) if rows else 0


async def day_holding_every_sku(db: Db) -> tuple[dict[str, Any], int]:
    """The only day's totals document, and its size had it held every SKU's figures."""
    days = [doc async for doc in db["sales_daily"].find({})]
    if len(days) != 1:  # the seeding crossed midnight (UTC): the figure would be two days
        raise RuntimeError(f"expected the orders on one day, found {len(days)}")
    fields = {"_id": 0, "sku": 1, "units": 1, "revenue_cents": 1}
    rows = db["sales_daily_skus"].find({"date": days[0]["date"]}, fields).sort("sku", 1)
    before = {**days[0], "skus": [row async for row in rows]}
    return days[0], len(bson.encode(before))


async def ceiling(db: Db, calls: int) -> float:
    """Seconds to insert the projection's final documents again, into empty indexed copies.

    Figure 4's ceiling for each of the projection's collections (unordered InsertOne
    bulk_writes, as many calls as catch-up batches): the server's cost of the same documents,
    with no reads, guards or folding.
    """
    seconds = 0.0
    for logical in COLLECTIONS["sales_daily"]:
        docs = [doc async for doc in db[logical].find({})]
        seconds += await bulk_write_ceiling(db, docs, calls, logical)
    return seconds


async def figures(db: Db, events: int, seconds: float) -> dict[str, float]:
    """The run's figures, from the projected database."""
    day, before = await day_holding_every_sku(db)
    sizes = {c: await largest(db, c) for c in COLLECTIONS["sales_daily"]}
    ceiling_seconds = await ceiling(db, -(-events // BATCH))
    return {
        RATE: events / seconds,
        CEILING: events / ceiling_seconds,
        "largest sales_daily document": float(max(sizes.values())),
        "day document": float(len(bson.encode(day))),
        "largest (day, SKU) document": float(sizes["sales_daily_skus"]),
        "day document holding every SKU (before)": float(before),
    }


async def measure(ctx: BenchContext, skus: int = 100_000) -> dict[str, float]:
    """One run: a fresh store with one day of `skus` SKUs sold, projected; {figure: value}."""
    engine = create_async_engine(await ctx.fresh_database(), pool_size=4, **JSON_OPTIONS)
    # As a worker makes its client: its guarded writes need no retryable writes.
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        ctx.mongodb_url, tz_aware=True, retryWrites=False
    )
    db = mongo[f"bench_wide_{uuid.uuid4().hex[:10]}"]
    try:
        store = PostgresEventStore(engine)
        total = await seed_orders(store, skus)
        await readable(engine)
        events, seconds = await catch_up(store, db, "sales_daily")
        check("sales_daily catch-up", events, total)
        return await figures(db, events, seconds)
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
        await dispose(engine)


@dataclass(frozen=True)
class WideDay:
    """One run's figures by name, as figure 8 (bench/scale_probes.py) reads them."""

    events_per_second: float
    ceiling_events_per_second: float
    largest_document_bytes: int
    day_document_bytes: int
    day_document_before_bytes: int  # every SKU in the day's own document, as it used to be


async def wide_day(ctx: BenchContext, skus: int) -> WideDay:
    """`measure`, as figures by name."""
    found = await measure(ctx, skus)
    return WideDay(
        found[RATE],
        found[CEILING],
        int(found["largest sales_daily document"]),
        int(found["day document"]),
        int(found["day document holding every SKU (before)"]),
    )


def notes(skus: int) -> list[str]:
    """How the wide day was measured."""
    orders = -(-skus // LINES)
    return [
        f"Wide day: {skus:,} distinct SKUs sold on one day, in {orders:,} orders of {LINES} "
        f"lines, each placed and confirmed ({2 * orders:,} events, batch-appended); "
        f"`sales_daily` projected from zero in batches of {BATCH} events.",
        "Document sizes are BSON bytes (`$bsonSize`); MongoDB refuses a document over 16 MiB. "
        "The largest is taken over the projection's three collections: day totals, (day, SKU) "
        "counters, and the order states it keeps (at most 100 lines each). "
        "'day document holding every SKU (before)' is the day's totals document with every "
        "SKU's figures in a list, as each day was stored before per-(day, SKU) counters, "
        "encoded from the same figures.",
    ]
