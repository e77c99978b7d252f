"""The read-model documents, field by field: what the folds write and the query API reads.

The query API imports this module, so it imports the standard library only, nothing of the
write side. A field renamed here fails type checking wherever a fold writes it or a route
reads it.
"""

# No `from __future__ import annotations`: on Python 3.11 a TypedDict only tells required keys
# from NotRequired ones at runtime (`__required_keys__`) when its annotations are evaluated.
from datetime import datetime
from decimal import Decimal
from typing import Any, NotRequired, TypedDict, TypeVar

Document = dict[str, Any]


def cents(amount: str | Decimal) -> int:
    """Money as integer cents, for range filters and sums."""
    return int(Decimal(amount) * 100)


def money(amount_cents: int) -> str:
    """Integer cents as a decimal string with two places."""
    return str((Decimal(amount_cents) / 100).quantize(Decimal("0.01")))


class Folded(TypedDict):
    """What every folded document carries: its key, and the token of its newest event."""

    _id: str
    _last: str


FoldedT = TypeVar("FoldedT", bound=Folded)


class StockLevels(TypedDict):
    """Units of one SKU: on hand, reserved for orders, and what is left to sell."""

    on_hand: int
    reserved: int
    available: int


class ProductDocument(Folded, StockLevels):
    """`products`: one catalog entry with its stock, keyed by product id."""

    id: str
    sku: str
    name: str
    description: str
    category: str
    price: str
    price_cents: int
    # Written from ProductRegistered v2 on; documents projected before units existed lack it.
    unit: NotRequired[str]
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    discontinued_reason: NotRequired[str]  # once discontinued


class StockDocument(Folded, StockLevels):
    """`stock`: one SKU's stock, keyed by SKU."""

    sku: str
    created_at: datetime
    stream_id: str
    version: int
    updated_at: datetime


class OrderLine(TypedDict):
    """One line of an order, priced when the order was placed."""

    sku: str
    quantity: int
    unit_price: str


class HistoryEntry(TypedDict):
    """One step of an order's history."""

    status: str
    at: datetime
    position: str
    reason: NotRequired[str]  # rejections and cancellations


class OrderDocument(Folded):
    """`orders`: one order with its status history, keyed by order id."""

    id: str
    customer_id: str
    lines: list[OrderLine]
    skus: list[str]
    total: str
    total_cents: int
    placed_at: datetime
    history: list[HistoryEntry]
    status: str
    version: int
    updated_at: datetime
    reason: NotRequired[str]  # the latest rejection or cancellation


class SalesOrderState(Folded):
    """`sales_orders`: what counting one order's sales needs, keyed by order id."""

    day: str
    lines: list[OrderLine]
    counted: bool


class SalesDayDocument(Folded):
    """`sales_daily`: one day's confirmed sales totals, keyed by the day (YYYY-MM-DD).

    Totals only: the figures per SKU are documents of their own (SalesDaySkuDocument), so a
    day's document stays the same size however many SKUs sell that day.
    """

    date: str
    orders: int
    revenue_cents: int
    revenue: str


class SkuSalesRow(TypedDict):
    """One SKU's figures within a day."""

    sku: str
    units: int
    revenue_cents: int


class SalesDaySkuDocument(Folded, SkuSalesRow):
    """`sales_daily_skus`: one SKU's confirmed sales on one day, keyed `<day>|<sku>`."""

    date: str


class AuditEntry(TypedDict):
    """`audit_log`: one event with who caused it, keyed by its global position."""

    _id: int
    position: str
    event_id: str
    stream_id: str
    stream_type: str
    type: str
    version: int
    schema_version: int
    data: dict[str, Any]
    actor: str | None
    correlation_id: str | None
    causation_id: str | None
    request_id: str | None
    recorded_at: datetime
