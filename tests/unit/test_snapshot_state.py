"""Every aggregate's state survives a snapshot, and its shape is pinned to its state version."""

from __future__ import annotations

import json
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

from domain.catalog import Product
from domain.inventory import StockItem
from domain.orders import Order
from domain.registry import STREAM_TYPES
from domain.values import OrderLine
from eventstore.positions import Position
from eventstore.snapshots import SnapshotUnsupported, decode, encode, restore, state_version, take

# The attributes each aggregate's state holds, at its state version. Changing the attributes
# without bumping `class_version` would restore old snapshots into the new code: this fails.
SHAPES = {
    "Product": (1, {"sku", "name", "description", "price", "category", "unit", "discontinued"}),
    "StockItem": (2, {"sku", "on_hand", "reservations"}),
    "Order": (1, {"customer_id", "lines", "total", "status", "reason"}),
}
ENVELOPE = {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}


def examples() -> list[Aggregate]:
    """One aggregate of each type, with values of every kind its state holds."""
    product = Product.register("MUG-1", "Mug", "blue", Decimal("3.50"), "kitchen")
    product.reprice(Decimal("4.25"))
    stock = StockItem.open("MUG-1")
    stock.receive(10)
    stock.reserve(uuid4(), 3)
    order = Order.place(uuid4(), [OrderLine("MUG-1", 2, Decimal("4.25"))])
    order.confirm()
    for aggregate in (product, stock, order):
        aggregate.collect_events()
    return [product, stock, order]


@pytest.mark.parametrize("aggregate", examples(), ids=lambda a: type(a).__name__)
def test_state_round_trips_through_json(aggregate: Aggregate) -> None:
    record = take(aggregate, Position(7, 42))
    stored = json.loads(json.dumps(record.state))  # as the jsonb column gives it back
    restored = restore(type(aggregate), type(record)(**{**vars(record), "state": stored}))
    assert restored is not None and vars(restored) == vars(aggregate)
    assert (restored.id, restored.version) == (aggregate.id, aggregate.version)


@pytest.mark.parametrize("aggregate", examples(), ids=lambda a: type(a).__name__)
def test_the_state_shape_matches_its_state_version(aggregate: Aggregate) -> None:
    name = next(n for n, cls in STREAM_TYPES.items() if cls is type(aggregate))
    version, attributes = SHAPES[name]
    assert set(vars(aggregate)) - ENVELOPE == attributes
    assert state_version(type(aggregate)) == version


def test_every_stream_type_is_pinned() -> None:
    assert set(SHAPES) == set(STREAM_TYPES)


def test_tags_cover_what_json_lacks() -> None:
    value = {"ids": {uuid4(): (Decimal("1.10"), frozenset({1}))}, "$odd": [None, True, 2.5]}
    assert decode(json.loads(json.dumps(encode(value)))) == value


def test_an_unknown_value_is_refused_not_guessed() -> None:
    with pytest.raises(SnapshotUnsupported):
        encode({"x": object()})
    with pytest.raises(SnapshotUnsupported):
        decode({"$value": "os:system", "fields": {}})
