"""Long stock item streams for figure 7: built with the batch append, loaded, weighed.

A stream is what a popular SKU accumulates: opened, received, then a reservation and its
release for each of many orders (each order id distinct, so every event is one the aggregate
accepts). The aggregate's memory is its deep size once loaded through the product's repository.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from uuid import UUID, uuid4

import asyncpg

from core.settings import Settings
from domain.catalog import Product
from domain.inventory import StockItem
from domain.registry import stream_type_of
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.serialization import EventCodec
from workers.bootstrap import repository

CHUNK = 5_000  # events per batch append
OPENING_STOCK = 1_000
# The interval the product snapshots at unless told otherwise.
DEFAULT_INTERVAL: int = Settings.model_fields["snapshot_interval"].default
# Objects a deep size stops at: shared by every instance, not part of one aggregate's state.
SHARED = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType)


async def build_stream(store: PostgresEventStore, sku: str, length: int) -> UUID:
    """Register the SKU and append its stock item stream of exactly `length` (≥ 2) events."""
    codec, item, written = EventCodec(), StockItem.open(sku), 0
    item.receive(OPENING_STOCK, "opening stock")
    product = Product.register(sku, f"Item {sku}", "", Decimal("9.99"), "bench")
    registered = [codec.encode(event) for event in product.collect_events()]
    await store.append(StreamAppend(product.id, stream_type_of(Product), 0, registered))
    while written < length:
        written = await extend(store, item, written, min(length, written + CHUNK), codec)
    return item.id


async def extend(
    store: PostgresEventStore, item: StockItem, stored: int, until: int, codec: EventCodec
) -> int:
    """Grow `item` (stored up to version `stored`) to version `until` in one batch append."""
    _grow(item, until)
    events = [codec.encode(event) for event in item.collect_events()]
    await store.append(StreamAppend(item.id, stream_type_of(StockItem), stored, events))
    return item.version


def _grow(item: StockItem, until: int) -> None:
    """Reserve and release one unit for new orders until the item is at version `until`."""
    while item.version < until:
        if until - item.version == 1:
            item.receive(1, "top-up")  # an odd length ends with a receipt
            continue
        order = uuid4()
        item.reserve(order, 1)
        item.release(order)


def deep_size(root: object) -> int:
    """Bytes of `root` and of everything it holds (each object once; classes and code not)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack += [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += list(obj)
        if hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    return total


async def aggregate_bytes(store: PostgresEventStore, stream_id: UUID, interval: int) -> int:
    """The deep size of the stock item loaded cold through the product's repository."""
    settings = Settings().model_copy(update={"snapshot_interval": interval})
    loaded = await repository(store, settings).get(StockItem, stream_id)
    if loaded is None:
        raise RuntimeError(f"stock item {stream_id} not found")
    return deep_size(loaded.aggregate)


async def wait_for_snapshot(
    conn: asyncpg.Connection, stream_id: UUID, seconds: float = 60.0
) -> int:
    """The version of the stream's snapshot once one is stored (it is written off the command)."""
    deadline = time.monotonic() + seconds
    query = "SELECT version FROM snapshots WHERE stream_id = $1"
    while (version := await conn.fetchval(query, stream_id)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no snapshot of {stream_id} after {seconds:g}s")
        await asyncio.sleep(0.05)
    return int(version)
