"""Response bodies of the query API (read-model documents, as clients see them)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.timestamps import Instant

T = TypeVar("T")


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class ProductResponse(BaseModel):
    """A catalog entry with its stock."""

    model_config = _example(
        {
            "id": "9f0c8f4e-1c55-5bb5-8e0e-2a1a0f7c6b11",
            "sku": "MUG-001",
            "name": "Mug",
            "description": "",
            "category": "kitchen",
            "price": "9.50",
            "unit": "each",
            "status": "active",
            "on_hand": 20,
            "reserved": 2,
            "available": 18,
            "version": 1,
        }
    )
    id: str
    sku: str
    name: str
    description: str
    category: str
    price: str
    unit: str = "each"  # a document projected before units existed has none: "each"
    status: str
    on_hand: int
    reserved: int
    available: int
    version: int
    updated_at: Instant | None = None


class StockResponse(BaseModel):
    """Stock of one SKU."""

    model_config = _example({"sku": "MUG-001", "on_hand": 20, "reserved": 2, "available": 18})
    sku: str
    on_hand: int
    reserved: int
    available: int
    version: int | None = None
    updated_at: Instant | None = None


class OrderLineResponse(BaseModel):
    """One order line with its captured unit price."""

    sku: str
    quantity: int
    unit_price: str


class StatusChange(BaseModel):
    """One step of an order's history."""

    status: str
    at: Instant
    reason: str | None = None
    position: str


class OrderResponse(BaseModel):
    """An order with its status history."""

    model_config = _example(
        {
            "id": "2b0e7a8c-2d34-4a0b-9f67-5c1d2e3f4a5b",
            "customer_id": "0b7e3c4e-6a3e-4c1b-9a8d-2f1f3b2a1c00",
            "status": "confirmed",
            "lines": [{"sku": "MUG-001", "quantity": 2, "unit_price": "9.50"}],
            "total": "19.00",
            "placed_at": "2026-11-22T10:00:00.000000Z",
            "history": [
                {"status": "pending", "at": "2026-11-22T10:00:00.000000Z", "position": "0" * 32},
            ],
            "version": 2,
        }
    )
    id: str
    customer_id: str
    status: str
    lines: list[OrderLineResponse]
    total: str
    placed_at: Instant
    reason: str | None = None
    history: list[StatusChange]
    version: int


class AuditEntryResponse(BaseModel):
    """One event as the audit log keeps it."""

    position: str
    event_id: str
    stream_id: str
    stream_type: str
    type: str
    version: int
    data: dict[str, Any]
    actor: str | None
    correlation_id: str | None
    causation_id: str | None
    request_id: str | None = None
    recorded_at: Instant


class SkuSales(BaseModel):
    """Units and revenue of one SKU."""

    sku: str
    units: int
    revenue: str


class SalesDayResponse(BaseModel):
    """One day's confirmed sales."""

    date: str
    orders: int
    revenue: str
    skus: list[SkuSales]
    skus_total: int | None = Field(
        None,
        description="The day's number of SKUs, present only when `skus` lists fewer (the first "
        "ones by SKU): page through them all at /api/v1/dashboards/sales-daily/{date}/skus",
    )


class SalesDailyResponse(BaseModel):
    """Sales per day over a range, with totals."""

    days: list[SalesDayResponse]
    orders: int
    revenue: str


class TopProduct(BaseModel):
    """A product's sales over a range."""

    sku: str
    name: str | None
    units: int
    revenue: str


class TopProductsResponse(BaseModel):
    """Best sellers over a range."""

    by: str
    items: list[TopProduct]


class OrderStatusResponse(BaseModel):
    """How many orders are in each status."""

    counts: dict[str, int]
    total: int


class Paginated(BaseModel, Generic[T]):
    """A page of a list."""

    items: list[T]
    total: int
    page: int
    size: int
