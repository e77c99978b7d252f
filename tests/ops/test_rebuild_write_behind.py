"""A rebuild folds catalog documents in memory between flushes, and stays exactly-once."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.history import history
from eventstore.postgres import PostgresEventStore
from projections.base import DocumentProjection
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import build
from projections.write_behind import EVENTS_PER_WRITE, WriteBehind
from tests.ops.helpers import Db
from workers.bootstrap import read_side_over
from workers.rebuild import rebuild
from workers.runner import CatchUp, drain

EVENTS = 6_000  # a year of orders over 60 SKUs: every stock document is touched all through


class Interrupted(Exception):
    """The process died, as far as the rebuild can tell."""


async def shop(store: PostgresEventStore) -> None:
    """Append a shop's history: orders reserving, shipping and releasing stock."""
    for batch in history(EVENTS):
        await store.append(*batch)


async def documents(db: Db, collection: str) -> list[dict[str, Any]]:
    """A collection's documents in `_id` order."""
    return [doc async for doc in db[collection].find({}).sort("_id", 1)]


async def page_by_page(
    store: PostgresEventStore, client: AsyncMongoClient[dict[str, Any]], name: str
) -> list[dict[str, Any]]:
    """The projection as live updates build it, batch by batch, in a scratch database."""
    scratch = client[f"scratch_wb_{uuid4().hex[:8]}"]
    try:
        await drain(
            CatchUp(store, Checkpoints(scratch), ParkedEvents(scratch), 250),
            [build(name, scratch)],
        )
        return await documents(scratch, name)
    finally:
        await client.drop_database(scratch.name)


async def test_documents_are_written_only_at_a_flush_and_read_back_after_eviction(
    pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    await shop(pg_store)
    projection = build("stock", mongo_db, {"stock": "stock_wb"})
    assert isinstance(projection, DocumentProjection)
    behind = WriteBehind(projection, "stock@wb", window=10_000, max_docs=40)
    events = await pg_store.read_all(limit=10_000)
    stock = [e for e in events if e.type in behind.handles]
    half = len(stock) // 2
    await behind.apply(stock[:half])
    assert await mongo_db["stock_wb"].count_documents({}) == 0  # all of it still in memory
    assert behind.due()  # 60 documents held, past max_docs
    await behind.flush()
    assert await mongo_db["stock_wb"].count_documents({}) == 60
    assert behind.docs == {}  # 60 documents, more than max_docs: emptied after the flush
    await behind.apply(stock[:half])  # redelivered after a crash: the guards skip it all
    await behind.apply(stock[half:])  # read back from the collection, then folded on
    await behind.flush()
    assert await documents(mongo_db, "stock_wb") == await page_by_page(
        pg_store, mongo_db.client, "stock"
    )


async def test_a_window_lasts_as_many_events_per_document_as_a_flush_rewrites(
    pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    await shop(pg_store)
    projection = build("stock", mongo_db, {"stock": "stock_wb"})
    assert isinstance(projection, DocumentProjection)
    behind = WriteBehind(projection, "stock@wb", window=10, max_docs=1_000)
    stock = [e for e in await pg_store.read_all(limit=10_000) if e.type in behind.handles]
    await behind.apply(stock[:100])
    dirty = len(behind.dirty)
    assert 10 < 100 < EVENTS_PER_WRITE * dirty  # past the window, not yet worth a flush
    assert not behind.due()
    same = [e for e in stock[100:] if projection.key(e) in behind.dirty]
    await behind.apply(same[: EVENTS_PER_WRITE * dirty - 101])
    assert len(behind.dirty) == dirty and not behind.due()  # one event short
    await behind.apply(same[EVENTS_PER_WRITE * dirty - 101 :][:1])
    assert behind.due()


async def test_a_rebuild_killed_between_flushes_resumes_to_the_same_documents(
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    clean_db: None,
) -> None:
    await shop(pg_store)
    flushes = 0

    def die_after_two_flushes(done: int, total: int) -> None:
        nonlocal flushes
        if done == 0:
            return  # the report that applying starts, before any flush
        flushes += 1
        if flushes == 2:
            raise Interrupted(f"{done} of {total}")

    side = read_side_over(engine, mongo_db)
    with pytest.raises(Interrupted):
        await rebuild(
            "products",
            side,
            progress=die_after_two_flushes,
            batch_size=250,
            window=1500,
            per_document=0,
        )
    resumed = await rebuild("products", side, batch_size=250, window=1500, per_document=0)
    assert resumed.resumed and 0 < resumed.events < EVENTS
    rebuilt = await documents(mongo_db, "products__g1")
    assert rebuilt == await page_by_page(pg_store, mongo_client, "products")
    stock = await rebuild("stock", side, batch_size=250)  # the default window: one flush
    assert stock.events >= EVENTS
    assert await documents(mongo_db, "stock__g1") == await page_by_page(
        pg_store, mongo_client, "stock"
    )


async def insert_unstorable_product(engine: AsyncEngine) -> str:
    """A ProductRegistered whose price in cents does not fit BSON's 64-bit integers."""
    stream_id = str(uuid4())
    data = {"sku": "HUGE-1", "name": "huge", "description": "", "category": "x", "unit": "each"}
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO events (event_id, stream_id, stream_type, version, type, data, "
                "recorded_at) VALUES (:eid, :sid, 'Product', 1, 'ProductRegistered', "
                "CAST(:data AS jsonb), now())"
            ),
            {"eid": uuid4(), "sid": stream_id}
            | {"data": json.dumps(data | {"price": "99999999999999999999.00"})},
        )
    return stream_id


async def test_a_flush_that_fails_goes_on_page_by_page_and_parks_the_event(
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    clean_db: None,
) -> None:
    await shop(pg_store)
    poison = await insert_unstorable_product(engine)
    result = await rebuild("products", read_side_over(engine, mongo_db), batch_size=500)
    assert result.generation == 1
    parked = [doc async for doc in mongo_db["parked_events"].find({"projection": "products"})]
    assert [p["stream_id"] for p in parked] == [poison] and "8-byte ints" in parked[0]["error"]
    rebuilt = await documents(mongo_db, "products__g1")
    assert len(rebuilt) == 60 and rebuilt == await page_by_page(pg_store, mongo_client, "products")
