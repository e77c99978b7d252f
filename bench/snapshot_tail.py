"""Figure 7's snapshot rows: what a cold load costs per interval, and what one snapshot costs.

The product snapshots a stream every SNAPSHOT_INTERVAL events, so a cold load restores the
snapshot and folds at most interval - 1 events after it (the worst case, measured here). For each
interval studied, the longest stream gets a snapshot at its current version (taken by the
product's `take`, saved by the store) and then interval - 1 more events by batch append; fresh
repositories over the same store then load it cold, in this process.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from uuid import UUID

import orjson

from bench.core import Figure, Stopwatch
from bench.projections import settled_like_a_worker
from bench.stock_streams import extend
from core.settings import Settings
from domain.inventory import StockItem
from eventstore.cache import Loaded
from eventstore.postgres import PostgresEventStore
from eventstore.serialization import EventCodec
from eventstore.snapshots import take
from workers.bootstrap import repository

INTERVALS = (25, 50, 100, 200, 500, 1_000)
LOADS = 7  # cold loads per interval after one unmeasured (each a few milliseconds)
# An interval no load folds this many events at: the repository reads snapshots, never offers one.
NEVER = 1 << 40


@dataclass(frozen=True)
class Tail:
    """What a cold load of a stream reads: its snapshot's version and the events after it."""

    snapshot: int | None
    events: int


async def tail(store: PostgresEventStore, stream_id: UUID) -> Tail:
    """The stream's snapshot version (None: none) and how many events a cold load folds after it."""
    record, events = await store.load_latest(stream_id)
    return Tail(record.version if record is not None else None, len(events))


async def bounded_tail(store: PostgresEventStore, stream_id: UUID, interval: int) -> Tail:
    """The stream's tail, refusing one no snapshot bounds (the figure would measure nothing)."""
    found = await tail(store, stream_id)
    if found.snapshot is None or found.events >= interval:
        raise RuntimeError(f"stream {stream_id}: a cold load would read {found}, not a tail")
    return found


async def cold_load(store: PostgresEventStore, stream_id: UUID, interval: int) -> Loaded[StockItem]:
    """The stock item loaded by a fresh repository of the product's, snapshots at `interval`."""
    settings = Settings().model_copy(update={"snapshot_interval": interval})
    loaded = await repository(store, settings).get(StockItem, stream_id)
    if loaded is None:
        raise RuntimeError(f"stock item {stream_id} not found")
    return loaded


async def snapshot_then_tail(
    store: PostgresEventStore, stream_id: UUID, events: int
) -> dict[str, float]:
    """A snapshot of the stream as it is, then `events` more; the snapshot's costs."""
    loaded = await cold_load(store, stream_id, NEVER)
    with Stopwatch() as took:
        record = take(loaded.aggregate, loaded.position)
    await store.drop_snapshots(stream_id)  # a save keeps only a newer snapshot: start clean
    with Stopwatch() as saved:
        await store.save_snapshot(record)
    await extend(store, loaded.aggregate, record.version, record.version + events, EventCodec())
    if await tail(store, stream_id) != Tail(record.version, events):
        raise RuntimeError(f"stream {stream_id}: the snapshot is not {events} events behind")
    return {
        "take": 1e6 * took.seconds,
        "save": 1e3 * saved.seconds,
        "state": len(orjson.dumps(record.state)),
    }


async def load_ms(
    store: PostgresEventStore, stream_id: UUID, interval: int, loads: int = LOADS
) -> float:
    """The median of `loads` cold loads by fresh repositories (after one unmeasured), in ms."""
    await cold_load(store, stream_id, interval)
    times = []
    for _ in range(loads):
        with Stopwatch() as watch:
            await cold_load(store, stream_id, interval)
        times.append(1e3 * watch.seconds)
    return statistics.median(times)


async def measure(store: PostgresEventStore, stream_id: UUID, figure: Figure, length: str) -> None:
    """At each interval, the worst-case cold load of the stream; the snapshot's costs."""
    with settled_like_a_worker():  # this process collects as the command API's does
        await _measure(store, stream_id, figure, length)


async def _measure(store: PostgresEventStore, stream_id: UUID, figure: Figure, length: str) -> None:
    for interval in INTERVALS:
        costs = await snapshot_then_tail(store, stream_id, interval - 1)
        figure.measurement(
            f"cold load, snapshot + tail of {interval - 1:,} events (interval {interval:,}), "
            f"{length}",
            "ms",
        ).values.append(await load_ms(store, stream_id, interval))
        for name, unit in (("take", "µs"), ("save", "ms"), ("state", "bytes")):
            figure.measurement(f"snapshot {name}, {length}", unit).values.append(costs[name])
    await store.drop_snapshots(stream_id)
    figure.measurement(f"cold load, whole stream (no snapshot), {length}", "ms").values.append(
        await load_ms(store, stream_id, 0, loads=3)  # seconds each at the full length
    )


def notes(length: str) -> list[str]:
    """How the snapshot rows were measured."""
    return [
        f"Cold load rows: the stream of {length} given a snapshot at its current version (the "
        "product's take, the store's save) then interval - 1 more events, the most a cold load "
        "folds after a snapshot at that interval; each row the median of "
        f"{LOADS} loads by a fresh repository (workers.bootstrap.repository) over the same "
        "PostgresEventStore, in this process (its collector set as the command API sets its "
        "own), after one unmeasured load.",
        "Snapshot rows: take = encoding the state on the command that crosses the interval "
        "(on the command's path); save = one INSERT … ON CONFLICT of it (off the command's "
        "path, once per interval); state = its JSON size. One value per interval studied; "
        "the state is the same at each (no open reservations: each order's is released). "
        "The whole-stream row: the median of 3 loads with snapshots off.",
    ]
