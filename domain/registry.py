"""Stable names and schema versions of every stream type and event type.

Stored events name their type by these strings, never by Python class paths, so classes can
move or be renamed without breaking the history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.domain import Aggregate, CanMutateAggregate

from domain.catalog import Product
from domain.inventory import StockItem
from domain.orders import Order
from domain.values import DEFAULT_UNIT

EventClass = type[CanMutateAggregate[Any]]
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

STREAM_TYPES: dict[str, type[Aggregate]] = {
    "Product": Product,
    "StockItem": StockItem,
    "Order": Order,
}

# type name -> (class, current schema version)
EVENT_TYPES: dict[str, tuple[EventClass, int]] = {
    "ProductRegistered": (Product.Registered, 2),
    "ProductRenamed": (Product.Renamed, 1),
    "ProductRepriced": (Product.Repriced, 1),
    "ProductDiscontinued": (Product.Discontinued, 1),
    "StockItemOpened": (StockItem.Opened, 1),
    "StockReceived": (StockItem.Received, 1),
    "StockAdjusted": (StockItem.Adjusted, 1),
    "StockReserved": (StockItem.Reserved, 1),
    "StockReservationRejected": (StockItem.ReservationRejected, 1),
    "StockReleased": (StockItem.Released, 1),
    "StockShipped": (StockItem.Shipped, 1),
    "OrderPlaced": (Order.Placed, 1),
    "OrderConfirmed": (Order.Confirmed, 1),
    "OrderRejected": (Order.Rejected, 1),
    "OrderCancelled": (Order.Cancelled, 1),
    "OrderShipped": (Order.Shipped, 1),
}


def _unit_each(data: dict[str, Any]) -> dict[str, Any]:
    """ProductRegistered v1 -> v2: products registered before units existed are sold "each"."""
    return {**data, "unit": DEFAULT_UNIT}


# (type name, schema version N) -> a pure function turning data of version N into N + 1.
# Stored events are never rewritten: the store's reads apply these (eventstore/serialization.py).
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("ProductRegistered", 1): _unit_each,
}

TYPE_NAMES: dict[EventClass, str] = {cls: name for name, (cls, _) in EVENT_TYPES.items()}
STREAM_TYPE_NAMES: dict[type[Aggregate], str] = {cls: name for name, cls in STREAM_TYPES.items()}


def type_name(event: CanMutateAggregate[Any]) -> str:
    """The stored type name of a domain event."""
    return TYPE_NAMES[type(event)]


def stream_type_of(aggregate_cls: type[Aggregate]) -> str:
    """The stored stream type name of an aggregate class."""
    return STREAM_TYPE_NAMES[aggregate_cls]
