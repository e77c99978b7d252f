"""Figure 8: a million events (`python -m bench --scale`), beside the same figures on a small store.

A shop's year of history (bench/history.py) is batch-appended into one database ("at depth")
and a hundredth of it into another ("small store"). Measured on both: the batch append of the
same new streams (into an empty store for the small side), reading the whole store with
decoding, rebuilding every projection against the bulk_write ceiling of the documents it wrote,
and `ordertrail rebuild --all` / `audit --all` as child processes (time, peak RSS). Then a day
with many distinct SKUs sold, projected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import sys
import uuid
from typing import Any

import asyncpg
from pymongo import InsertOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import scale_probes
from bench.context import BenchContext
from bench.core import Figure, Mode, Stopwatch, check, repeat
from bench.history import BATCH, Batch, history, probe
from bench.projections import Clients, settled_like_a_worker, warm_up
from bench.scale_report import DEPTH, SMALL, Names, conclude
from bench.store_reads import read_all
from core.db import JSON_OPTIONS
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases
from projections.registry import INDEXES, PROJECTIONS

FULL_EVENTS = 1_000_000
Db = AsyncDatabase[dict[str, Any]]


@dataclasses.dataclass
class Side:
    """One database of the figure and the MongoDB database its projections go to."""

    names: Names
    url: str
    engine: AsyncEngine
    conn: asyncpg.Connection
    mongo_db: str = dataclasses.field(default_factory=lambda: f"bench_fig8_{uuid.uuid4().hex[:8]}")

    @property
    def store(self) -> PostgresEventStore:
        """The product's event store over this database."""
        return PostgresEventStore(self.engine)

    async def events(self) -> int:
        """How many events the store holds."""
        return int(await self.conn.fetchval("SELECT count(*) FROM events"))

    async def fill(self, total: int) -> float:
        """Append a history of about `total` events; the append's events/s."""
        store, events, seconds = self.store, 0, 0.0
        for batch in history(total):
            with Stopwatch() as watch:
                await store.append(*batch)
            seconds += watch.seconds
            events += sum(len(s.events) for s in batch)
        return events / seconds


async def open_side(ctx: BenchContext, names: Names) -> Side:
    """A fresh database for one side."""
    url = await ctx.fresh_database()
    engine = create_async_engine(url, pool_size=4, **JSON_OPTIONS)
    return Side(names, url, engine, await asyncpg.connect(ctx.plain(url)))


async def settle(side: Side) -> None:
    """The store as it is after running a while: vacuumed, its dirty pages written out.

    Otherwise the autovacuum a million inserts set off, or a checkpoint, lands in a probe.
    """
    await side.conn.execute("VACUUM (ANALYZE) events")
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await side.conn.execute("CHECKPOINT")


async def append_rate(side: Side, batches: list[Batch], empty: bool) -> float:
    """Events/s of appending `batches` (one transaction each); into an emptied store if asked."""
    if empty:
        await side.conn.execute("TRUNCATE events")
    store, events = side.store, sum(len(s.events) for b in batches for s in b)
    with Stopwatch() as watch:
        for batch in batches:
            await store.append(*batch)
    return events / watch.seconds


async def append_probes(small: Side, deep: Side, figure: Figure, mode: Mode, events: int) -> None:
    """The same kind of new streams appended into an empty store and into the deep one.

    Each probe is under a second, so a checkpoint or an autovacuum landing in one moves it by
    a third: five repetitions at least, the side that goes first alternating.
    """
    turns = itertools.count()

    async def both() -> dict[str, float]:
        sides = [(small, SMALL.append, True), (deep, DEPTH.append, False)]
        if next(turns) % 2:
            sides.reverse()
        return {name: await append_rate(side, probe(events), empty) for side, name, empty in sides}

    mode = dataclasses.replace(mode, repetitions=max(5, mode.repetitions))
    await repeat(mode, both, figure, {SMALL.append: "events/s", DEPTH.append: "events/s"})


async def reads(side: Side, figure: Figure, mode: Mode) -> None:
    """Read the whole store through read_all and decode every event."""
    total, name = await side.events(), side.names.read

    async def once() -> dict[str, float]:
        count, seconds = await read_all(side.store, BATCH, decode=True)
        check(name, count, total)
        return {name: count / seconds}

    await repeat(mode, once, figure, {name: "events/s"})


async def ceiling_seconds(db: Db, logical: str, physical: str, calls: int) -> float:
    """Seconds to insert a collection's documents afresh (same indexes) in `calls` bulk_writes."""
    docs = [doc async for doc in db[physical].find({})]
    if not docs:
        return 0.0
    target = db[f"ceiling_{physical}"]
    if logical in INDEXES:
        await target.create_indexes(INDEXES[logical])
    per_call = math.ceil(len(docs) / max(1, calls))
    with Stopwatch() as watch:
        for start in range(0, len(docs), per_call):
            await target.bulk_write([InsertOne(d) for d in docs[start : start + per_call]])
    await target.drop()
    return watch.seconds


async def ceiling_rate(side: Side, mongo: Clients, total: int) -> float:
    """Events/s at which the raw bulk_write ceiling writes every live projection's documents."""
    job_db, worker_db, seconds = mongo.job[side.mongo_db], mongo.worker[side.mongo_db], 0.0
    for projection in PROJECTIONS:
        _, physical = await Aliases(job_db).live(projection)
        for logical, name in physical.items():
            seconds += await ceiling_seconds(worker_db, logical, name, math.ceil(total / BATCH))
    return total * len(PROJECTIONS) / seconds


def rebuild_rates(names: Names, total: int, seconds: dict[str, float]) -> dict[str, float]:
    """Every projection's rebuild rate, and all of them together, from each one's seconds."""
    rates = {f"rebuild {p}, {names.where}": total / s for p, s in seconds.items()}
    return {names.rebuild: total * len(seconds) / sum(seconds.values()), **rates}


async def rebuild_child(ctx: BenchContext, side: Side, figure: Figure, mongo: Clients) -> None:
    """`ordertrail rebuild --all` in a child: its time, peak RSS and each projection's rate.

    Each projection's time is its alias's, from reserving the new generation to swapping it in
    (the old one's retiring grace excluded), and each rebuilt the whole store.
    """
    aliases, total = Aliases(mongo.job[side.mongo_db]), await side.events()
    before = {p: (await aliases.live(p))[0] for p in PROJECTIONS}
    cost = await scale_probes.scan(ctx, ctx.env(side.url, side.mongo_db), "rebuild", "--all")
    figure.measurement(side.names.rebuild_cli[0], "s").values.append(cost.seconds)
    figure.measurement(side.names.rebuild_cli[1], "MiB").values.append(cost.peak_rss_mib)
    seconds = {}
    for projection in PROJECTIONS:
        took = await aliases.rebuild_seconds(projection)
        # A rebuild that had to start over (an outage mid-way) reserves another generation, so
        # the live one may be more than one ahead; its time is then the last attempt's.
        if (await aliases.live(projection))[0] <= before[projection] or not took:
            raise RuntimeError(f"rebuild --all did not swap in a new {projection}")
        seconds[projection] = took
    record(figure, rebuild_rates(side.names, total, seconds))


def record(figure: Figure, rates: dict[str, float]) -> None:
    """Add each rate to the figure."""
    for name, value in rates.items():
        figure.measurement(name, "events/s").values.append(value)


async def audit(ctx: BenchContext, side: Side, figure: Figure) -> None:
    """`ordertrail audit --all` in a child: its time and peak RSS."""
    cost = await scale_probes.scan(ctx, ctx.env(side.url, side.mongo_db), "audit", "--all")
    seconds, rss = side.names.audit_cli
    figure.measurement(seconds, "s").values.append(cost.seconds)
    figure.measurement(rss, "MiB").values.append(cost.peak_rss_mib)


async def wide_day(ctx: BenchContext, figure: Figure, skus: int) -> None:
    """The sales case: one day, `skus` distinct SKUs sold."""
    day = await scale_probes.wide_day(ctx, skus)
    figure.measurement(f"a day of {skus:,} SKUs: projection", "events/s").values.append(
        day.events_per_second
    )
    figure.measurement(f"a day of {skus:,} SKUs: largest document", "KiB").values.append(
        day.largest_document_kib
    )


async def measure_side(
    ctx: BenchContext, side: Side, figure: Figure, mongo: Clients, light: Mode
) -> None:
    """Reads, one rebuild of every projection against its ceiling, the ops commands' RSS.

    The rebuild is `ordertrail rebuild --all` in a child process (bench/scale_probes.py).
    """
    with settled_like_a_worker():  # as figure 4 reads: as a worker would
        await reads(side, figure, light)
    await rebuild_child(ctx, side, figure, mongo)
    await audit(ctx, side, figure)
    total = await side.events()
    figure.measurement(side.names.ceiling, "events/s").values.append(
        await ceiling_rate(side, mongo, total)
    )
    figure.measurement(side.names.events, "events").values.append(total)
    try:
        await mongo.job.drop_database(side.mongo_db)
    except PyMongoError as exc:  # measured already; the server is stopped after the run anyway
        print(f"figure 8: could not drop {side.mongo_db}: {exc}", file=sys.stderr)


async def run(ctx: BenchContext) -> Figure:
    """Figure 8."""
    figure, mode = Figure(8, "A million events"), ctx.mode
    light = dataclasses.replace(mode, repetitions=min(3, mode.repetitions))
    total, skus = mode.count(FULL_EVENTS), mode.count(100_000, floor=200)
    small, deep = await open_side(ctx, SMALL), await open_side(ctx, DEPTH)
    mongo = Clients.open(ctx.mongodb_url)
    try:
        build = await deep.fill(total)
        await settle(deep)
        figure.measurement("history build at depth (batch append)", "events/s").values.append(build)
        await append_probes(small, deep, figure, light, mode.count(20_000, floor=1_000))
        await small.conn.execute("TRUNCATE events")
        await small.fill(max(200, total // 100))
        await warm_up(mongo.worker)
        await warm_up(mongo.job)
        # First, while the server holds little: dropping the deep side's read models (gigabytes)
        # once brought the MongoDB-wire server down, and with it this case.
        await wide_day(ctx, figure, skus)
        for side in (small, deep):
            await measure_side(ctx, side, figure, mongo, light)
    finally:
        for side in (small, deep):
            await side.conn.close()
            await dispose(side.engine)
        await mongo.close()
    conclude(figure, skus=skus)
    return figure
