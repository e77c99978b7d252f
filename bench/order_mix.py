"""A store of orders over a fixed catalog, batch-appended: what the ops scans are measured on.

Every event comes from the domain's own aggregates (so each stream folds as the projections
expect) and goes in through `PostgresEventStore.append(*streams)`, a few thousand events per
append. The catalog stays the same size whatever the store's, so the stock streams grow with the
store as a popular SKU's does: an order reserves each line's stock, then 60 % ship, 10 % are
cancelled (released) and the rest stay confirmed. Days advance every ORDERS_PER_DAY orders.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.catalog import Product
from domain.inventory import StockItem
from domain.orders import Order
from domain.values import OrderLine
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StreamAppend
from eventstore.serialization import EventCodec

SKUS = 1_000
ORDERS_PER_DAY = 1_000
APPEND_EVENTS = 2_000  # events per batch append
START = datetime(2025, 1, 1, 9, tzinfo=UTC)


@dataclasses.dataclass
class OrderMix:
    """Pending events per stream, flushed as one batch append."""

    store: PostgresEventStore
    codec: EventCodec = dataclasses.field(default_factory=EventCodec)
    pending: dict[UUID, tuple[str, int, list[NewEvent]]] = dataclasses.field(default_factory=dict)
    written: int = 0
    queued: int = 0

    def add(self, aggregate: Any, kind: str, at: datetime) -> None:
        """Queue what `aggregate` decided since its last collection, stamped `at`."""
        new = aggregate.collect_events()
        _, _, events = self.pending.setdefault(
            aggregate.id, (kind, aggregate.version - len(new), [])
        )
        for event in new:
            encoded = self.codec.encode(event)
            events.append(dataclasses.replace(encoded, recorded_at=at, event_id=uuid.uuid4()))
        self.queued += len(new)

    async def flush(self, force: bool = False) -> None:
        """Append the queued events once there are enough of them (or now, if `force`)."""
        if not self.pending or (self.queued < APPEND_EVENTS and not force):
            return
        appends = [
            StreamAppend(stream_id, kind, expected, events, {"actor": "bench-mix"})
            for stream_id, (kind, expected, events) in self.pending.items()
        ]
        await self.store.append(*appends)
        self.written, self.queued, self.pending = self.written + self.queued, 0, {}


async def seed_orders(store: PostgresEventStore, events: int, skus: int = SKUS) -> int:
    """At least `events` events: the catalog, then orders until there are enough; how many."""
    mix, rng = OrderMix(store), random.Random(16)
    items, prices = await _catalog(mix, skus)
    names, number = list(items), 0
    while mix.written + mix.queued < events:
        at = START + timedelta(days=number // ORDERS_PER_DAY, seconds=number % 86_400)
        _order(mix, rng.sample(names, rng.randint(1, 3)), rng, items, prices, at)
        number += 1
        await mix.flush()
    await mix.flush(force=True)
    return mix.written


async def _catalog(mix: OrderMix, skus: int) -> tuple[dict[str, StockItem], dict[str, Decimal]]:
    """Register and stock every SKU; the stock items and prices by SKU."""
    items, prices = {}, {}
    for n in range(skus):
        sku, price = f"MIX-{n:05d}", Decimal("1.00") + n % 50
        product = Product.register(sku, f"Item {n}", "", price, "mix")
        items[sku], prices[sku] = StockItem.open(sku), price
        items[sku].receive(10**9)
        mix.add(product, "Product", START)
        mix.add(items[sku], "StockItem", START)
        await mix.flush()
    return items, prices


def _order(
    mix: OrderMix,
    skus: list[str],
    rng: random.Random,
    items: dict[str, StockItem],
    prices: dict[str, Decimal],
    at: datetime,
) -> None:
    """One order of `skus`: placed, reserved, confirmed, then shipped, cancelled or left."""
    lines = [OrderLine(sku, rng.randint(1, 5), prices[sku]) for sku in skus]
    order = Order.place(uuid.uuid4(), lines)
    for line in lines:
        items[line.sku].reserve(order.id, line.quantity)
    order.confirm()
    fate = rng.random()
    if fate < 0.6:
        order.ship()
        for sku in skus:
            items[sku].ship(order.id)
    elif fate < 0.7:
        order.cancel("changed their mind")
        for sku in skus:
            items[sku].release(order.id)
    mix.add(order, "Order", at)
    for sku in skus:
        mix.add(items[sku], "StockItem", at)
