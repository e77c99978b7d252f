"""Figure 3: events/s of ordertrail's batch append vs raw asyncpg executemany and COPY.

The same events go three ways, in batches of BATCH events (one transaction each): through
PostgresEventStore.append(*streams) into `events`, and as plain rows through asyncpg's
`executemany` and `copy_records_to_table` into `import_ceiling`, a table with the columns,
defaults (xid8 included), constraints and indexes of `events`. Every side starts from the same
in-memory events and pays its own JSON encoding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from bench.context import BenchContext
from bench.core import Figure, repeat
from bench.tables import events_like
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StreamAppend

FULL_EVENTS = 100_000
BATCH = 1_000
EVENTS_PER_STREAM = 10
UNIT = "events/s"
ORDERTRAIL, EXECUTEMANY, COPY = (
    "ordertrail batch append",
    "asyncpg executemany",
    "asyncpg COPY",
)
COLUMNS = (
    "event_id",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
)
# The DDL of `events` under another name.
CEILING_DDL = tuple(events_like("import_ceiling"))
INSERT = (
    f"INSERT INTO import_ceiling ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})"
)

Batch = tuple[StreamAppend, ...]
Row = tuple[Any, ...]


def _stream(number: int, started: datetime) -> StreamAppend:
    """A new product stream: registered, then renamed and repriced (EVENTS_PER_STREAM events)."""
    events = [
        NewEvent(
            "ProductRegistered",
            {
                "sku": f"SKU-{number:07d}",
                "name": f"Imported product {number}",
                "description": "Brushed steel, graphite finish; imported from the legacy catalog.",
                "price": "129.90",
                "category": "furniture",
            },
            started,
            event_id=uuid4(),
        )
    ]
    for version in range(2, EVENTS_PER_STREAM + 1):
        data = {"price": f"{100 + version}.90"} if version % 2 else {"name": f"Product {number}"}
        kind = "ProductRepriced" if version % 2 else "ProductRenamed"
        events.append(NewEvent(kind, data, started + timedelta(seconds=version), event_id=uuid4()))
    metadata = {"actor": "importer", "correlation_id": f"import-{number // 1000}"}
    return StreamAppend(uuid4(), "Product", 0, events, metadata)


def _batches(total: int) -> list[Batch]:
    """`total` events over total / EVENTS_PER_STREAM new streams, BATCH events per batch."""
    started = datetime.now(UTC)
    streams = [_stream(n, started) for n in range(max(1, total // EVENTS_PER_STREAM))]
    per_batch = max(1, BATCH // EVENTS_PER_STREAM)
    return [tuple(streams[i : i + per_batch]) for i in range(0, len(streams), per_batch)]


def _rows(batch: Batch) -> list[Row]:
    """The `events` rows of a batch, as a raw importer would write them."""
    rows = []
    for stream in batch:
        metadata = json.dumps(stream.metadata)
        for version, event in enumerate(stream.events, start=stream.expected_version + 1):
            rows.append(
                (
                    event.event_id,
                    stream.stream_id,
                    stream.stream_type,
                    version,
                    event.type,
                    event.schema_version,
                    json.dumps(event.data),
                    metadata,
                    event.recorded_at,
                )
            )
    return rows


async def _timed(work: Callable[[], Awaitable[None]], events: int) -> float:
    """Events/s of `work`."""
    started = time.perf_counter()
    await work()
    return events / (time.perf_counter() - started)


async def _ordertrail(store: PostgresEventStore, batches: list[Batch]) -> None:
    """Append every batch, each in one transaction."""
    for batch in batches:
        await store.append(*batch)


async def _executemany(conn: asyncpg.Connection, batches: list[Batch]) -> None:
    """Insert every batch with one executemany in one transaction."""
    for batch in batches:
        async with conn.transaction():
            await conn.executemany(INSERT, _rows(batch))


async def _copy(conn: asyncpg.Connection, batches: list[Batch]) -> None:
    """COPY every batch (binary; one statement, one transaction each)."""
    for batch in batches:
        await conn.copy_records_to_table("import_ceiling", records=_rows(batch), columns=COLUMNS)


async def _prime(store: PostgresEventStore, conn: asyncpg.Connection, batch: Batch) -> None:
    """Prepare every statement once (type introspection, plans) before anything is timed."""
    await _ordertrail(store, [batch[:1]])
    await _executemany(conn, [batch[:1]])
    await conn.execute("TRUNCATE import_ceiling")
    await _copy(conn, [batch[:1]])


def _round(
    store: PostgresEventStore, conn: asyncpg.Connection, batches: list[Batch]
) -> Callable[[], Awaitable[dict[str, float]]]:
    """One repetition: the three ways, each into an emptied table."""
    events = sum(len(s.events) for batch in batches for s in batch)

    async def run() -> dict[str, float]:
        await conn.execute("TRUNCATE events, import_ceiling")
        values = {ORDERTRAIL: await _timed(lambda: _ordertrail(store, batches), events)}
        await conn.execute("TRUNCATE import_ceiling")
        values[EXECUTEMANY] = await _timed(lambda: _executemany(conn, batches), events)
        await conn.execute("TRUNCATE import_ceiling")
        values[COPY] = await _timed(lambda: _copy(conn, batches), events)
        return values

    return run


def _conclude(figure: Figure, total: int) -> None:
    """Ratios, the target and the notes."""
    share = figure.ratio("ordertrail / executemany", ORDERTRAIL, EXECUTEMANY)
    figure.ratio("ordertrail / COPY", ORDERTRAIL, COPY)
    figure.target(
        "batch append ≥ 60 % of raw asyncpg executemany",
        share >= 0.6,
        f"{share:.0%} ({figure.median(ORDERTRAIL):,.0f} vs "
        f"{figure.median(EXECUTEMANY):,.0f} events/s)",
    )
    figure.notes += [
        f"{total:,} events over {total // EVENTS_PER_STREAM:,} new streams "
        f"({EVENTS_PER_STREAM} events each), batches of {min(BATCH, total):,} events, "
        "one transaction per batch, one connection, tables truncated before each way.",
        "ordertrail: PostgresEventStore.append(*streams) (version check + one unnest "
        "INSERT … RETURNING). Ceilings: the same rows into `import_ceiling` (same columns, "
        "xid8 default, unique and commit-order indexes as `events`), JSON encoding included.",
    ]


async def run(ctx: BenchContext) -> Figure:
    """Measure Figure 3."""
    figure = Figure(3, "Batch import")
    url = await ctx.fresh_database()
    total = ctx.mode.count(FULL_EVENTS)
    batches = _batches(total)
    engine = create_async_engine(url, pool_size=2)
    conn = await asyncpg.connect(ctx.plain(url))
    try:
        for statement in CEILING_DDL:
            await conn.execute(statement)
        store = PostgresEventStore(engine)
        await _prime(store, conn, batches[0])
        units = dict.fromkeys((ORDERTRAIL, EXECUTEMANY, COPY), UNIT)
        await repeat(ctx.mode, _round(store, conn, batches), figure, units)
    finally:
        await conn.close()
        await dispose(engine)
    _conclude(figure, total)
    return figure
