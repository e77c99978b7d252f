"""The audit reads long streams a chunk at a time, and is exact across the chunks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.catalog import Product
from domain.inventory import StockItem
from domain.values import product_id
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StoredEvent, StreamAppend
from eventstore.serialization import EventCodec
from projections.base import DocumentProjection
from tests.ops.helpers import Db, caught_up
from workers.bootstrap import read_side_over
from workers.completeness import audit_projection
from workers.completeness_docs import FIRST_EVENTS, Seen, StreamAudit
from workers.service import SubscriptionService
from workers.stream_reads import CHUNK, StreamCursor

ORDERS = 1_200  # a reservation and a release each: a stock stream of almost five chunks


class RecordingStore(PostgresEventStore):
    """The PostgreSQL store, noting the limit of every stream read."""

    limits: list[int | None]

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        """Note the limit, then read."""
        self.limits.append(limit)
        return await super().read_stream(stream_id, from_version, limit)


async def seed_busy_sku(store: PostgresEventStore, sku: str) -> int:
    """A product whose stock stream took ORDERS reservations and releases; its length."""
    codec = EventCodec()
    product = Product.register(sku, "Busy", "", Decimal("2.50"), "busy")
    item = StockItem.open(sku)
    item.receive(1_000)
    for _ in range(ORDERS):
        order = uuid.uuid4()
        item.reserve(order, 3)
        item.release(order)
    appends = [
        StreamAppend(aggregate.id, kind, 0, [codec.encode(e) for e in aggregate.collect_events()])
        for aggregate, kind in ((product, "Product"), (item, "StockItem"))
    ]
    await store.append(*appends)
    return len(appends[1].events)


async def test_a_long_stream_is_audited_a_chunk_at_a_time_and_exactly(
    worker: SubscriptionService, engine: AsyncEngine, pg_store: PostgresEventStore, mongo_db: Db
) -> None:
    length = await seed_busy_sku(pg_store, "BUSY-1")
    assert length > 4 * CHUNK
    await caught_up(pg_store, mongo_db, ["products", "stock"])
    store = RecordingStore(engine)
    store.limits = []
    side = read_side_over(engine, mongo_db, store)

    for name in ("products", "stock"):
        report = await audit_projection(name, side)
        assert (report["checked"], report["holes"]) == (1, []), name
    # Never a whole stream at once, and the long one over several reads.
    assert None not in store.limits and max(store.limits) <= CHUNK  # type: ignore[type-var]
    assert sum(limit == CHUNK for limit in store.limits) >= 2 * 4

    # A change the last chunk's events did not make is found: every chunk was folded.
    await mongo_db["products"].update_one(
        {"_id": str(product_id("BUSY-1"))}, {"$inc": {"reserved": 3, "available": -3}}
    )
    [hole] = (await audit_projection("products", side))["holes"]
    assert (hole["kind"], hole["found"]) == ("wrong", {"available": 997, "reserved": 3})


def tick(who: str) -> NewEvent:
    """An event saying which stream it is on."""
    return NewEvent("Ticked", {"who": who}, datetime.now(UTC))


class Linked(DocumentProjection[Any]):
    """One document, `linked`, fed by its stream and by any stream a `Linked` event names."""

    name = collection_name = "linked"
    handles = frozenset({"Ticked", "Linked"})

    def key(self, event: StoredEvent) -> str | None:
        """Every event changes the one document."""
        return "linked"

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """Its own streams, and those the `Linked` events name."""
        named = {UUID(e.data["other"]) for e in events if e.type == "Linked"}
        return {e.stream_id for e in events} | named

    def fold(self, doc: Any, event: StoredEvent) -> Any:
        """Which stream each event came from, in commit order."""
        doc = doc or {"from": []}
        doc["from"].append(event.data["who"])
        return doc


async def test_a_stream_named_late_in_a_long_stream_is_merged_in_from_the_start(
    engine: AsyncEngine, pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    main, other = uuid.uuid4(), uuid.uuid4()
    who: list[str] = []
    for n in range(30):  # the two streams interleaved in commit order
        stream, name = (other, "other") if n % 10 == 5 else (main, "main")
        version = who.count(name)
        await pg_store.append(StreamAppend(stream, "T", version, [tick(name)]))
        who.append(name)
    link = NewEvent("Linked", {"who": "main", "other": str(other)}, datetime.now(UTC))
    [last] = await pg_store.append(StreamAppend(main, "T", who.count("main"), [link]))
    who.append("main")
    projection = Linked(mongo_db)
    first = StreamCursor(pg_store, main)
    await first.read(FIRST_EVENTS)  # the link is far past the first events
    doc = {"_id": "linked", "_last": last.position.token, "from": who}
    await projection.collection.insert_one(doc)
    seen = Seen({"linked": doc}, {"linked"})

    audit = StreamAudit(projection, pg_store, last.position.token, set(), seen)
    assert (await audit.run(first), audit.holes) == (1, [])
