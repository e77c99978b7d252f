"""The catalog read model: one document per product, with its available stock."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from domain.values import product_id, stock_item_id
from eventstore.records import StoredEvent
from projections.base import DocumentProjection
from projections.documents import ProductDocument, StockLevels, cents

PRODUCT_EVENTS = {"ProductRegistered", "ProductRenamed", "ProductRepriced", "ProductDiscontinued"}
STOCK_EVENTS = {
    "StockReceived",
    "StockAdjusted",
    "StockReserved",
    "StockReleased",
    "StockShipped",
}


class ProductsProjection(DocumentProjection[ProductDocument]):
    """`products`: {id, sku, name, description, category, price, unit, status, available, ...}."""

    name = "products"
    collection_name = "products"
    handles = frozenset(PRODUCT_EVENTS | STOCK_EVENTS)
    write_behind = True  # one document per SKU, touched by orders all year

    def key(self, event: StoredEvent) -> str | None:
        """Product events by stream; stock events by the product of their SKU."""
        if event.type in PRODUCT_EVENTS:
            return str(event.stream_id)
        return str(product_id(event.data["sku"]))

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """A product document is fed by the product's stream and its SKU's stock stream."""
        skus = {e.data["sku"] for e in events if "sku" in e.data}
        return {product_id(sku) for sku in skus} | {stock_item_id(sku) for sku in skus}

    def fold(self, doc: ProductDocument | None, event: StoredEvent) -> ProductDocument:
        """Apply one event to the product document."""
        if event.type == "ProductRegistered":
            return registered(event)
        if doc is None:
            raise ValueError(f"{event.type} before ProductRegistered")
        if event.type in PRODUCT_EVENTS:
            doc["version"], doc["updated_at"] = event.version, event.recorded_at
        data = event.data
        if event.type == "ProductRenamed":
            doc["name"] = data["name"]
        elif event.type == "ProductRepriced":
            doc["price"], doc["price_cents"] = data["price"], cents(data["price"])
        elif event.type == "ProductDiscontinued":
            doc["status"], doc["discontinued_reason"] = "discontinued", data["reason"]
        else:
            apply_stock(doc, event)
        return doc


def registered(event: StoredEvent) -> ProductDocument:
    """A new product document."""
    data = event.data
    return {
        "id": str(event.stream_id),
        "sku": data["sku"],
        "name": data["name"],
        "description": data["description"],
        "category": data["category"],
        "price": data["price"],
        "price_cents": cents(data["price"]),
        "unit": data["unit"],  # ProductRegistered v2: the store upcasts v1 events with "each"
        "status": "active",
        "on_hand": 0,
        "reserved": 0,
        "available": 0,
        "version": event.version,
        "created_at": event.recorded_at,
        "updated_at": event.recorded_at,
        "_id": str(event.stream_id),
        "_last": event.token,
    }


def apply_stock(doc: StockLevels, event: StoredEvent) -> None:
    """Stock movements as they change on hand, reserved and available."""
    data, on_hand, reserved = event.data, doc["on_hand"], doc["reserved"]
    if event.type == "StockReceived":
        on_hand += data["quantity"]
    elif event.type == "StockAdjusted":
        on_hand += data["delta"]
    elif event.type == "StockReserved":
        reserved += data["quantity"]
    elif event.type == "StockReleased":
        reserved -= data["quantity"]
    elif event.type == "StockShipped":
        on_hand, reserved = on_hand - data["quantity"], reserved - data["quantity"]
    doc["on_hand"], doc["reserved"], doc["available"] = on_hand, reserved, on_hand - reserved
