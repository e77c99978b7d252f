"""Figure 2: events/s of 1 and 8 concurrent writers, ordertrail vs the eventsourcing library.

Every writer owns its own streams and appends one event per command at the stream's tracked
expected version, as a command handler does. ordertrail writers are asyncio tasks on one
SQLAlchemy async engine; the eventsourcing library is synchronous, so its writers are threads
sharing one psycopg pool. Both sides record the same ProductRenamed-like payload.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent as LibraryEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.context import BenchContext
from bench.core import Figure, Mode, repeat
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StreamAppend

WRITERS = (1, 8)
POOL_SIZE = max(WRITERS)
STREAMS_PER_WRITER = 16
# Seconds of timed load per figure (4 measurements x repetitions share it); warm-ups run 1 s.
BUDGET = {"smoke": 4.0, "quick": 16.0, "full": 150.0}
WARMUP_SECONDS = 1.0
TOPIC = "domain.catalog:Product.Renamed"
NAME = "Ergonomic brushed-steel office chair, graphite, model 2026 (deluxe lumbar edition)"
METADATA = {
    "actor": "bench-user",
    "request_id": "0f8e4c7a-3d1b-4e59-9a2c-6b7d8e9f0a1b",
    "correlation_id": "0f8e4c7a-3d1b-4e59-9a2c-6b7d8e9f0a1b",
    "causation_id": "0f8e4c7a-3d1b-4e59-9a2c-6b7d8e9f0a1b",
}
UNIT = "events/s"

Writer = Callable[[float], Awaitable[int]]


def _label(system: str, writers: int) -> str:
    """The measurement name of `writers` writers of `system`."""
    return f"{system}, {writers} writer{'s' if writers > 1 else ''}"


def _seconds(mode: Mode) -> float:
    """Length of one timed run, so the whole figure stays within its budget."""
    return min(mode.seconds, BUDGET[mode.name] / (2 * len(WRITERS) * mode.repetitions))


def _renamed(stream_id: UUID, version: int) -> StreamAppend:
    """One ProductRenamed command's append at the stream's expected version."""
    event = NewEvent("ProductRenamed", {"name": NAME}, datetime.now(UTC))
    return StreamAppend(stream_id, "Product", version, [event], METADATA)


def _library_state(stream_id: UUID, version: int) -> bytes:
    """The eventsourcing library's JSON state of the same event (envelope included)."""
    state = {
        "originator_id": str(stream_id),
        "originator_version": version,
        "timestamp": datetime.now(UTC).isoformat(),
        "name": NAME,
    }
    return json.dumps(state).encode()


async def _ordertrail_writer(store: PostgresEventStore, deadline: float) -> int:
    """Append one-event commands round-robin over this writer's streams until `deadline`."""
    streams, count = [uuid4() for _ in range(STREAMS_PER_WRITER)], 0
    versions: dict[UUID, int] = {}
    while time.perf_counter() < deadline:
        stream_id = streams[count % STREAMS_PER_WRITER]
        [result] = await store.append(_renamed(stream_id, versions.get(stream_id, 0)))
        versions[stream_id], count = result.version, count + 1
    return count


def _library_writer(recorder: PostgresApplicationRecorder, deadline: float) -> int:
    """The same loop through the eventsourcing recorder (blocking; runs in a thread)."""
    streams, count = [uuid4() for _ in range(STREAMS_PER_WRITER)], 0
    versions: dict[UUID, int] = {}
    while time.perf_counter() < deadline:
        stream_id = streams[count % STREAMS_PER_WRITER]
        version = versions.get(stream_id, 0) + 1
        state = _library_state(stream_id, version)
        recorder.insert_events([LibraryEvent(stream_id, version, TOPIC, state)])
        versions[stream_id], count = version, count + 1
    return count


async def _ordertrail_rate(store: PostgresEventStore, writers: int, seconds: float) -> float:
    """Events/s of `writers` concurrent ordertrail writers for `seconds`."""
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_ordertrail_writer(store, started + seconds) for _ in range(writers))
    )
    return sum(counts) / (time.perf_counter() - started)


def _library_threads(recorder: PostgresApplicationRecorder, writers: int, seconds: float) -> float:
    """Events/s of `writers` eventsourcing writer threads for `seconds`."""
    with ThreadPoolExecutor(writers) as pool:
        started = time.perf_counter()
        futures = [
            pool.submit(_library_writer, recorder, started + seconds) for _ in range(writers)
        ]
        total = sum(future.result() for future in futures)
    return total / (time.perf_counter() - started)


async def _library_rate(
    recorder: PostgresApplicationRecorder, writers: int, seconds: float
) -> float:
    """Events/s of `writers` eventsourcing writers, off the event loop."""
    return await asyncio.to_thread(_library_threads, recorder, writers, seconds)


async def _ordertrail_store(url: str) -> PostgresEventStore:
    """ordertrail's store on `url`, its pool already holding POOL_SIZE connections."""
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)
    await asyncio.gather(*(_touch(engine) for _ in range(POOL_SIZE)))
    store = PostgresEventStore(engine)
    await _ordertrail_writer(store, time.perf_counter() + 0.05)  # prepare the statements
    return store


async def _touch(engine: AsyncEngine) -> None:
    """Open (and return to the pool) one connection, held briefly so the pool grows."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_sleep(0.05)"))


def _library_recorder(plain_url: str) -> PostgresApplicationRecorder:
    """The eventsourcing library's PostgreSQL application recorder, its table created."""
    url = make_url(plain_url)
    datastore = PostgresDatastore(
        dbname=url.database or "postgres",
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        pool_size=POOL_SIZE,
    )
    recorder = PostgresApplicationRecorder(datastore, events_table_name="stored_events")
    recorder.create_table()
    datastore.pool.wait(30)
    _library_writer(recorder, time.perf_counter() + 0.05)  # prepare the statements
    return recorder


def _round(
    mode: Mode, store: PostgresEventStore, recorder: PostgresApplicationRecorder
) -> Callable[[], Awaitable[dict[str, float]]]:
    """One repetition: every system at every writer count (warm-ups are shorter)."""
    warmups = mode.warmups

    async def run() -> dict[str, float]:
        nonlocal warmups
        seconds = min(WARMUP_SECONDS, _seconds(mode)) if warmups > 0 else _seconds(mode)
        warmups -= 1
        values = {}
        for writers in WRITERS:
            values[_label("ordertrail", writers)] = await _ordertrail_rate(store, writers, seconds)
        for writers in WRITERS:
            rate = await _library_rate(recorder, writers, seconds)
            values[_label("eventsourcing", writers)] = rate
        return values

    return run


def _conclude(figure: Figure, mode: Mode) -> None:
    """Ratios, the target and the notes."""
    one, many = WRITERS
    ours = figure.ratio(
        f"ordertrail {many}/{one}", _label("ordertrail", many), _label("ordertrail", one)
    )
    figure.ratio(
        f"eventsourcing {many}/{one}", _label("eventsourcing", many), _label("eventsourcing", one)
    )
    figure.ratio(
        f"ordertrail {many} / eventsourcing {many}",
        _label("ordertrail", many),
        _label("eventsourcing", many),
    )
    figure.target(
        f"ordertrail {many} writers ≥ 1.5x one writer",
        ours >= 1.5,
        f"{ours:.2f}x ({figure.median(_label('ordertrail', many)):,.0f} vs "
        f"{figure.median(_label('ordertrail', one)):,.0f} events/s)",
    )
    figure.notes += [
        f"each run {_seconds(mode):.3g} s; writers on distinct streams "
        f"({STREAMS_PER_WRITER} each), one event per append at the tracked expected version; "
        f"pools of {POOL_SIZE} connections; separate fresh databases per system.",
        "ordertrail: PostgresEventStore.append (version check + unnest INSERT … RETURNING, "
        "xid8 commit order, no table lock; appends queued behind two in flight commit "
        "together), asyncio tasks on one SQLAlchemy asyncpg engine.",
        "eventsourcing: PostgresApplicationRecorder.insert_events (psycopg 3 pipeline; "
        "`LOCK TABLE … IN EXCLUSIVE MODE` + NOTIFY in every insert transaction), one thread "
        "per writer.",
    ]


async def run(ctx: BenchContext) -> Figure:
    """Measure Figure 2."""
    figure = Figure(2, "Append scaling")
    store = await _ordertrail_store(await ctx.fresh_database())
    recorder = await asyncio.to_thread(_library_recorder, ctx.plain(await ctx.fresh_database()))
    try:
        units = {_label(s, n): UNIT for s in ("ordertrail", "eventsourcing") for n in WRITERS}
        await repeat(ctx.mode, _round(ctx.mode, store, recorder), figure, units)
    finally:
        await dispose(store.engine)
        await asyncio.to_thread(recorder.datastore.close)
    _conclude(figure, ctx.mode)
    return figure
