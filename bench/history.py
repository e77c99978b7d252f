"""A shop's history as batch appends, for figure 8: a year of orders over a catalog.

The catalog (a hundredth as many SKUs as events) is registered and stocked first; then orders of
1-3 lines are placed, their stock reserved and the order confirmed, and most are shipped (stock
shipped too) or cancelled (stock released); products are now and then repriced or renamed, and
stock is received again before it runs out. Every event comes from the domain's own aggregates,
encoded by the EventCodec, and is stamped with a day of the year it falls in, so daily read
models see a year of days. Each batch holds about BATCH events, each stream at most once. Orders
get time-ordered ids, as the command API gives them (core/ids.py).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from core.ids import uuid7
from domain.catalog import Product
from domain.inventory import StockItem
from domain.orders import Order
from domain.registry import stream_type_of
from domain.values import OrderLine
from eventstore.records import StreamAppend
from eventstore.serialization import EventCodec

BATCH = 1_000  # events per batch append
EVENTS_PER_SKU = 100  # catalog size: one SKU per this many events of history
RESTOCK_BELOW, RESTOCK = 5, 40  # a receipt or two per SKU over the year
YEAR = timedelta(days=365)
Batch = list[StreamAppend]


@dataclasses.dataclass
class Shop:
    """The catalog and its stock, kept between batches; orders live for one batch."""

    total: int
    rng: random.Random
    start: datetime
    codec: EventCodec = dataclasses.field(default_factory=EventCodec)
    products: list[Product] = dataclasses.field(default_factory=list)
    items: list[StockItem] = dataclasses.field(default_factory=list)
    written: dict[UUID, int] = dataclasses.field(default_factory=dict)
    touched: dict[UUID, Aggregate] = dataclasses.field(default_factory=dict)
    pending: int = 0
    produced: int = 0

    def act(self, aggregate: Aggregate, change: Any = None) -> None:
        """Count the events of `change()` (None: a just-created aggregate) on `aggregate`."""
        before = aggregate.version
        if change is None:
            before = 0
        else:
            change()
        self.pending += aggregate.version - before
        self.touched[aggregate.id] = aggregate

    def flush(self) -> Batch:
        """The touched aggregates' new events as one batch, stamped with their day."""
        stamp = self.start + YEAR * (self.produced / max(1, self.total))
        batch = []
        for aggregate in self.touched.values():
            expected = self.written.get(aggregate.id, 0)
            events = [
                dataclasses.replace(self.codec.encode(event), recorded_at=stamp)
                for event in aggregate.collect_events()
            ]
            if not isinstance(aggregate, Order):  # orders are done with at the end of a batch
                self.written[aggregate.id] = aggregate.version
            batch.append(
                StreamAppend(aggregate.id, stream_type_of(type(aggregate)), expected, events)
            )
        self.produced += self.pending
        self.touched, self.pending = {}, 0
        return batch


def history(total: int, seed: int = 8) -> Iterator[Batch]:
    """Batches of about BATCH events until at least `total` events in all."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    shop = Shop(total, random.Random(seed), start)
    for number in range(max(20, total // EVENTS_PER_SKU)):
        _open(shop, f"SKU-{number:06d}")
        if shop.pending >= BATCH:
            yield shop.flush()
    while shop.produced + shop.pending < total:
        _order(shop)
        if shop.rng.random() < 0.03:
            _change_product(shop)
        if shop.pending >= BATCH:
            yield shop.flush()
    if shop.pending:
        yield shop.flush()


def _open(shop: Shop, sku: str) -> None:
    """Register a product and receive its first stock."""
    price = Decimal(shop.rng.randint(199, 19_999)) / 100
    product = Product.register(sku, f"Product {sku}", "", price, shop.rng.choice(CATEGORIES))
    item = StockItem.open(sku)
    shop.act(product)
    shop.act(item)
    shop.act(item, lambda: item.receive(RESTOCK, "opening stock"))
    shop.products.append(product)
    shop.items.append(item)


def _order(shop: Shop) -> None:
    """Place an order, reserve and confirm it, then ship, cancel or leave it confirmed."""
    picks = shop.rng.sample(range(len(shop.items)), shop.rng.randint(1, 3))
    lines = [
        OrderLine(shop.items[i].sku, shop.rng.randint(1, 3), shop.products[i].price) for i in picks
    ]
    order = Order.place(uuid7(), lines)
    shop.act(order)
    for i, line in zip(picks, lines, strict=True):
        item = shop.items[i]
        if item.available < RESTOCK_BELOW + line.quantity:
            shop.act(item, lambda item=item: item.receive(RESTOCK, "restock"))
        shop.act(item, lambda item=item, q=line.quantity: item.reserve(order.id, q))
    shop.act(order, order.confirm)
    fate = shop.rng.random()
    if fate < 0.75:
        shop.act(order, order.ship)
        for i in picks:
            shop.act(shop.items[i], lambda item=shop.items[i]: item.ship(order.id))
    elif fate < 0.9:
        shop.act(order, lambda: order.cancel("customer request"))
        for i in picks:
            shop.act(shop.items[i], lambda item=shop.items[i]: item.release(order.id))


def _change_product(shop: Shop) -> None:
    """Reprice (four times in five) or rename a product."""
    product = shop.rng.choice(shop.products)
    if shop.rng.random() < 0.8:
        price = Decimal(shop.rng.randint(199, 19_999)) / 100
        shop.act(product, lambda: product.reprice(price))
    else:
        name = f"Product {product.sku} ({shop.rng.randint(2, 99)})"
        shop.act(product, lambda: product.rename(name))


def probe(events: int) -> list[Batch]:
    """New order streams (placed and confirmed), BATCH events per batch: the append probe."""
    codec, batches, batch = EventCodec(), [], []
    for number in range(max(1, events // 2)):
        order = Order.place(uuid7(), [OrderLine(f"PROBE-{number % 97}", 1, Decimal("9.99"))])
        order.confirm()
        encoded = [codec.encode(event) for event in order.collect_events()]
        batch.append(StreamAppend(order.id, stream_type_of(Order), 0, encoded))
        if len(batch) * 2 >= BATCH:
            batches.append(batch)
            batch = []
    return [*batches, batch] if batch else batches


CATEGORIES = ("kitchen", "garden", "office", "toys", "books", "tools", "sports", "furniture")
