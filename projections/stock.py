"""The stock read model: one document per SKU."""

from __future__ import annotations

from eventstore.records import StoredEvent
from projections.base import DocumentProjection
from projections.documents import StockDocument
from projections.products import STOCK_EVENTS, apply_stock


class StockProjection(DocumentProjection[StockDocument]):
    """`stock`: {sku, on_hand, reserved, available, version}, keyed by SKU."""

    name = "stock"
    collection_name = "stock"
    handles = frozenset(STOCK_EVENTS | {"StockItemOpened"})
    write_behind = True  # one document per SKU, touched by orders all year

    def key(self, event: StoredEvent) -> str | None:
        """Documents are keyed by SKU."""
        return str(event.data["sku"])

    def fold(self, doc: StockDocument | None, event: StoredEvent) -> StockDocument:
        """Apply one stock event."""
        if event.type == "StockItemOpened":
            return opened(event)
        if doc is None:
            raise ValueError(f"{event.type} before StockItemOpened")
        apply_stock(doc, event)
        doc["stream_id"], doc["version"] = str(event.stream_id), event.version
        doc["updated_at"] = event.recorded_at
        return doc


def opened(event: StoredEvent) -> StockDocument:
    """A new stock document, with nothing in stock."""
    return {
        "sku": event.data["sku"],
        "on_hand": 0,
        "reserved": 0,
        "available": 0,
        "created_at": event.recorded_at,
        "stream_id": str(event.stream_id),
        "version": event.version,
        "updated_at": event.recorded_at,
        "_id": str(event.data["sku"]),
        "_last": event.token,
    }
