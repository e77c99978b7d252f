"""Figure 6: query API latency and throughput beside a bare `find_one` ceiling.

Products are batch-appended to the event store, a worker projects them into MongoDB, then the
query API answers by id and a filtered list, and a bare FastAPI route answers `find_one` by
`_id` on the very same collection.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import create_async_engine

from bench.command_api import bench_token, lengths, load_note
from bench.context import BenchContext
from bench.core import Figure, repeat
from bench.http import Client, Response
from bench.load import LoadResult, Request, closed_loop
from domain.catalog import Product
from domain.inventory import StockItem
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.serialization import EventCodec
from projections.aliases import Aliases

CONNECTIONS = 16
CATEGORIES = [f"cat-{n}" for n in range(8)]
MIN_PRICES = ["10.00", "25.00", "50.00", "75.00"]
BY_ID, LIST, CEILING = "by id", "filtered list", "find_one ceiling"
LIST_CEILING = "find + count ceiling"
SIDES = (BY_ID, LIST, CEILING, LIST_CEILING)
UNITS = {
    **dict.fromkeys(SIDES, "req/s"),
    **{f"{side} {p}": "ms" for side in SIDES for p in ("p50", "p99")},
}
APPEND_STREAMS = 500  # streams per seeding append
Run = Callable[[], Awaitable[dict[str, float]]]


def catalog(count: int) -> list[StreamAppend]:
    """`count` products over CATEGORIES at prices 1-100, each with a stock receipt."""
    codec, pick, appends = EventCodec(), random.Random(6), []
    for n in range(count):
        sku, price = f"QRY-{n:06d}", Decimal(pick.randint(100, 10000)) / 100
        product = Product.register(sku, f"Item {n}", "", price, CATEGORIES[n % len(CATEGORIES)])
        item = StockItem.open(sku)
        item.receive(pick.randint(1, 100))
        for aggregate, kind in ((product, "Product"), (item, "StockItem")):
            encoded = [codec.encode(event) for event in aggregate.collect_events()]
            appends.append(StreamAppend(aggregate.id, kind, 0, encoded))
    return appends


async def seed(database_url: str, count: int) -> list[str]:
    """Batch-append the catalog; the product ids."""
    engine = create_async_engine(database_url)
    try:
        store, appends = PostgresEventStore(engine), catalog(count)
        for start in range(0, len(appends), APPEND_STREAMS):
            await store.append(*appends[start : start + APPEND_STREAMS])
    finally:
        await dispose(engine)
    return [str(a.stream_id) for a in appends if a.stream_type == "Product"]


async def projected(mongodb_url: str, database: str, count: int, seconds: float) -> str:
    """Wait until the live `products` collection holds `count` documents; its physical name."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    deadline, seen = time.monotonic() + seconds, -1
    try:
        while time.monotonic() < deadline:
            name = (await Aliases(client[database]).all_live()).get("products", "products")
            seen = await client[database][name].count_documents({})
            if seen >= count:
                return name
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    raise RuntimeError(f"products read model has {seen} of {count} documents after {seconds:.0f} s")


async def drop(mongodb_url: str, database: str) -> None:
    """Drop the figure's MongoDB database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def by_id(ids: list[str], token: str) -> Request:
    """GET /api/v1/products/{id} for random seeded ids."""
    headers, pick = {"Authorization": f"Bearer {token}"}, random.Random(1)

    async def request(client: Client, _: int) -> Response:
        return await client.get(f"/api/v1/products/{pick.choice(ids)}", headers=headers)

    return request


def filtered(token: str) -> Request:
    """GET /api/v1/products?category=..&min_price=..&size=20."""
    headers, pick = {"Authorization": f"Bearer {token}"}, random.Random(2)

    async def request(client: Client, _: int) -> Response:
        params = {"category": pick.choice(CATEGORIES), "min_price": pick.choice(MIN_PRICES)}
        return await client.get("/api/v1/products", params={**params, "size": 20}, headers=headers)

    return request


def find_one(ids: list[str]) -> Request:
    """GET /find/{id} on the bare ceiling."""
    pick = random.Random(1)

    async def request(client: Client, _: int) -> Response:
        return await client.get(f"/find/{pick.choice(ids)}")

    return request


def find_list() -> Request:
    """GET /list on the bare ceiling: the filtered list's find + count, same parameters."""
    pick = random.Random(2)

    async def request(client: Client, _: int) -> Response:
        params = {
            "category": pick.choice(CATEGORIES),
            "min_cents": int(100 * float(pick.choice(MIN_PRICES))),
        }
        return await client.get("/list", params=params)

    return request


def summary(side: str, result: LoadResult) -> dict[str, float]:
    """Rate and latency percentiles of one side's run; a failing side stops the figure."""
    if result.errors:
        raise RuntimeError(f"{side}: non-2xx answers {result.statuses}")
    return {side: result.rate, f"{side} p50": result.p(50), f"{side} p99": result.p(99)}


def record_targets(figure: Figure) -> None:
    """Ratios and the target of Figure 6."""
    by_id_ratio = figure.ratio(f"{BY_ID} / {CEILING}", BY_ID, CEILING)
    list_ratio = figure.ratio(f"{LIST} / {CEILING}", LIST, CEILING)
    same_query = figure.ratio(f"{LIST} / {LIST_CEILING}", LIST, LIST_CEILING)
    api, raw, listed = (figure.median(name) for name in (BY_ID, CEILING, LIST))
    figure.target(
        "query by id ≥ 70 % of the find_one ceiling",
        by_id_ratio >= 0.7,
        f"{by_id_ratio:.0%} ({api:,.0f} vs {raw:,.0f} req/s); filtered list "
        f"{list_ratio:.0%} ({listed:,.0f} req/s)",
    )
    figure.target(
        "filtered list ≥ 70 % of a bare route running the same find + count",
        same_query >= 0.7,
        f"{same_query:.0%} ({listed:,.0f} vs {figure.median(LIST_CEILING):,.0f} req/s)",
    )


async def prepare(ctx: BenchContext, env: dict[str, str], count: int) -> tuple[list[str], str]:
    """Seed the store, let a worker project it; product ids and the live collection."""
    ids = await seed(env["DATABASE_URL"], count)
    with ctx.worker(env):
        seconds = 60 + count / 20
        collection = await projected(ctx.mongodb_url, env["MONGODB_DB"], count, seconds)
    return ids, collection


def sides(api: str, ceiling: str, ids: list[str], runs: Iterator[float]) -> Run:
    """One repetition: by id, the filtered list, then the ceiling, equally long."""
    token = bench_token(["queries:read"])

    async def once() -> dict[str, float]:
        seconds = next(runs)
        one = await closed_loop(api, by_id(ids, token), CONNECTIONS, seconds)
        many = await closed_loop(api, filtered(token), CONNECTIONS, seconds)
        raw = await closed_loop(ceiling, find_one(ids), CONNECTIONS, seconds)
        bare = await closed_loop(ceiling, find_list(), CONNECTIONS, seconds)
        measured = {**summary(BY_ID, one), **summary(LIST, many), **summary(CEILING, raw)}
        return {**measured, **summary(LIST_CEILING, bare)}

    return once


def ceiling_env(ctx: BenchContext, env: dict[str, str], collection: str) -> dict[str, str]:
    """The find ceiling's settings: the read models' server, database and live collection."""
    return {
        **env,
        "CEILING_MONGODB_URL": ctx.mongodb_url,
        "CEILING_MONGODB_DB": env["MONGODB_DB"],
        "CEILING_MONGODB_COLLECTION": collection,
    }


async def run(ctx: BenchContext) -> Figure:
    """Seed, then measure the three sides in turn, each repetition."""
    figure, count, load = Figure(6, "Query API"), ctx.mode.count(1000), os.getloadavg()[0]
    env = ctx.env(await ctx.fresh_database(), f"bench_queries_{uuid.uuid4().hex[:8]}")
    try:
        ids, collection = await prepare(ctx, env, count)
        with (
            ctx.server("query_api.main:app", env) as api,
            ctx.server("bench.ceilings:find_app", ceiling_env(ctx, env, collection)) as ceiling,
        ):
            await repeat(ctx.mode, sides(api, ceiling, ids, lengths(ctx.mode)), figure, UNITS)
    finally:
        await drop(ctx.mongodb_url, env["MONGODB_DB"])
    record_targets(figure)
    figure.notes += [
        f"{count:,} products (8 categories, prices 1-100, with stock) projected by a worker; "
        f"{CONNECTIONS} connections; list: category + min_price, size 20, sorted by SKU "
        "(find + count_documents); ceiling: bare FastAPI + AsyncMongoClient find_one by _id on "
        "the same collection, same random ids as by id; find + count ceiling: the list's "
        "find(...).sort('sku').limit(20) and count_documents on the same bare route's client "
        "(the list target is the issue's find_one one; the same-query one is ours, to tell the "
        "API's cost from the server's).",
        load_note(load),
    ]
    return figure
