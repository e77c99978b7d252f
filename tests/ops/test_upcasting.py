"""An event stored at an old schema version reaches every reader at the current one.

ProductRegistered v1 has no `unit`; v2 does ("each" for the old ones). The event is inserted
raw, as an older release wrote it; then the store's reads, the repository, the projections
(catch-up, replay, rebuild) and `ordertrail audit` all see the v2 shape.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from uuid import uuid4

import sqlalchemy as sa

from domain.catalog import Product
from domain.values import product_id
from eventstore.postgres import PostgresEventStore
from eventstore.records import StoredEvent
from eventstore.repository import Repository
from projections.aliases import Aliases
from projections.checkpoints import ParkedEvents
from tests.ops.conftest import Cli
from tests.ops.helpers import Db, caught_up
from workers.bootstrap import read_side_over
from workers.rebuild import rebuild
from workers.service import SubscriptionService

ALL = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]
V1 = {"sku": "OLD-1", "name": "Mug", "description": "", "price": "9.50", "category": "old"}
INSERT_V1 = sa.text(
    "INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version, data, "
    "recorded_at) VALUES (:event_id, :stream_id, 'Product', 1, 'ProductRegistered', 1, "
    "CAST(:data AS jsonb), :recorded_at)"
)


async def insert_v1(store: PostgresEventStore) -> None:
    """A v1 ProductRegistered, written the way an older release wrote it."""
    params = {"event_id": uuid4(), "stream_id": product_id("OLD-1"), "data": json.dumps(V1)}
    async with store.engine.begin() as conn:
        await conn.execute(INSERT_V1, params | {"recorded_at": datetime.now(UTC)})


async def read_all_when_visible(store: PostgresEventStore) -> list[StoredEvent]:
    """read_all once the insert is below the watermark (any open transaction holds it back)."""
    deadline = time.monotonic() + 10
    while not (events := await store.read_all()):
        assert time.monotonic() < deadline, "the insert never became visible to read_all"
        await asyncio.sleep(0.02)
    return events


async def product_doc(db: Db) -> dict[str, object]:
    """The live products document of OLD-1."""
    _, names = await Aliases(db).live("products")
    doc = await db[names["products"]].find_one({"sku": "OLD-1"})
    assert doc is not None
    return doc


async def test_every_reader_sees_an_old_event_at_the_current_schema_version(
    pg_store: PostgresEventStore, worker: SubscriptionService, mongo_db: Db, cli: Cli
) -> None:
    await insert_v1(pg_store)
    by_stream = await pg_store.read_stream(product_id("OLD-1"))
    for read in (by_stream, await read_all_when_visible(pg_store)):
        assert (read[0].schema_version, read[0].data) == (2, V1 | {"unit": "each"})
    loaded = await Repository(pg_store).get(Product, product_id("OLD-1"))
    assert loaded is not None and loaded.aggregate.unit == "each"

    await caught_up(pg_store, mongo_db, ALL)
    assert (await product_doc(mongo_db))["unit"] == "each"
    entry = await mongo_db["audit_log"].find_one({"stream_id": str(product_id("OLD-1"))})
    assert entry is not None and entry["data"]["unit"] == "each"
    assert await ParkedEvents(mongo_db).list("products") == []
    audit = await cli("audit", "--all")
    assert audit.returncode == 0, audit.stdout + audit.stderr

    await mongo_db["products"].delete_many({})
    replayed = await cli("replay", "--stream", str(product_id("OLD-1")))
    assert replayed.returncode == 0, replayed.stderr
    assert (await product_doc(mongo_db))["unit"] == "each"

    await rebuild("products", read_side_over(pg_store.engine, mongo_db))
    assert (await product_doc(mongo_db))["unit"] == "each"
    assert await ParkedEvents(mongo_db).list("products") == []
