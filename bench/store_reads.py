"""Reading the whole event store page by page: through the store, with and without decoding,
and with raw asyncpg keyset queries, the floor the other two are measured against."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import asyncpg

from bench.core import Stopwatch, check
from eventstore.postgres import PostgresEventStore
from eventstore.serialization import EventCodec

RAW_KEYSET = (
    "SELECT position, transaction_id::text::bigint AS txid, event_id, stream_id, stream_type, "
    "version, type, schema_version, data, metadata, recorded_at FROM events "
    "WHERE (transaction_id, position) > ($1::text::xid8, $2) "
    "ORDER BY transaction_id, position LIMIT $3"
)


async def read_all(store: PostgresEventStore, page: int, decode: bool) -> tuple[int, float]:
    """Page through the whole store with read_all (and decode every event); events, seconds."""
    codec, position, count = EventCodec(), None, 0
    with Stopwatch() as watch:
        while events := await store.read_all(position, page):
            if decode:
                for event in events:
                    codec.decode(event)
            count += len(events)
            position = events[-1].position
    return count, watch.seconds


async def raw_keyset(conn: asyncpg.Connection, page: int) -> tuple[int, float]:
    """Page through the whole store with raw asyncpg keyset queries (rows only); events, seconds."""
    txid, position, count = "0", 0, 0
    with Stopwatch() as watch:
        while rows := await conn.fetch(RAW_KEYSET, txid, position, page):
            count += len(rows)
            txid, position = str(rows[-1]["txid"]), rows[-1]["position"]
    return count, watch.seconds


async def read_run(
    store: PostgresEventStore, conn: asyncpg.Connection, total: int, page: int
) -> dict[str, float]:
    """The three ways of reading the whole store, `page` events a read; their rates."""
    rates = {}
    ways: list[tuple[str, Callable[[], Awaitable[tuple[int, float]]]]] = [
        ("read_all only", partial(read_all, store, page, decode=False)),
        ("read_all + EventCodec.decode", partial(read_all, store, page, decode=True)),
        ("raw asyncpg keyset read", partial(raw_keyset, conn, page)),
    ]
    for label, measure in ways:
        events, seconds = await measure()
        check(label, events, total)
        rates[label] = total / seconds
    return rates
