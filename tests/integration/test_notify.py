"""Subscribers are woken by NOTIFY after commits, one signal per burst."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.notify import CHANNEL, postgres_notifier
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StreamAppend
from tests.conftest import asyncpg_dsn


async def test_listeners_get_the_newest_token_after_commit(
    engine: AsyncEngine, database_url: str
) -> None:
    store = PostgresEventStore(engine)
    notifier = postgres_notifier(store)
    store.on_appended(lambda streams, last, seconds: notifier.signal(last))
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    await listener.add_listener(CHANNEL, lambda *args: received.put_nowait(args[3]))
    notifier.start()
    try:
        results = []
        for _ in range(3):
            event = NewEvent("Tick", {}, datetime.now(UTC))
            results += await store.append(StreamAppend(uuid4(), "Ticker", 0, [event]))
        tokens = [await asyncio.wait_for(received.get(), 5)]
        while tokens[-1] != results[-1].position.token:
            tokens.append(await asyncio.wait_for(received.get(), 5))
        assert len(tokens) <= 3 and tokens == sorted(tokens)
    finally:
        await notifier.stop()
        await listener.close()
