"""Seeding large histories fast, and waiting for workers, for the ops tests."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from domain.catalog import Product
from domain.inventory import StockItem
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.serialization import EventCodec
from projections.checkpoints import Checkpoints

Db = AsyncDatabase[dict[str, Any]]


async def seed_catalog(store: PostgresEventStore, skus: int, category: str = "bulk") -> int:
    """Register, rename and stock `skus` products with batch appends: 4 events each."""
    codec, appends = EventCodec(), []
    for i in range(skus):
        sku = f"{category.upper()}-{i:06d}"
        product = Product.register(sku, f"Item {i}", "", Decimal("1.00") + i % 7, category)
        product.rename(f"Item {i} (v2)")
        item = StockItem.open(sku)
        item.receive(10 + i % 5)
        for aggregate, kind in ((product, "Product"), (item, "StockItem")):
            events = [codec.encode(e) for e in aggregate.collect_events()]
            appends.append(StreamAppend(aggregate.id, kind, 0, events))
    for start in range(0, len(appends), 500):
        await store.append(*appends[start : start + 500])
    return skus * 4


async def caught_up(
    store: PostgresEventStore, db: Db, names: list[str], seconds: float = 60
) -> None:
    """Wait until each named subscriber's checkpoint is at the head of the store."""
    checkpoints, deadline = Checkpoints(db), time.monotonic() + seconds
    while True:
        positions = [await checkpoints.load(name) for name in names]
        pending = [p is None or bool(await store.read_all(p, limit=1)) for p in positions]
        if not any(pending):
            return
        assert time.monotonic() < deadline, f"{names} did not catch up"
        await asyncio.sleep(0.05)
