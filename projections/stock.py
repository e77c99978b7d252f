"""The stock read model: one document per SKU."""

from __future__ import annotations

from eventstore.records import StoredEvent
from projections.base import Document, DocumentProjection, stream_meta
from projections.products import STOCK_EVENTS, apply_stock


class StockProjection(DocumentProjection):
    """`stock`: {sku, on_hand, reserved, available, version}, keyed by SKU."""

    name = "stock"
    collection_name = "stock"
    handles = frozenset(STOCK_EVENTS | {"StockItemOpened"})

    def key(self, event: StoredEvent) -> str | None:
        """Documents are keyed by SKU."""
        return str(event.data["sku"])

    def fold(self, doc: Document | None, event: StoredEvent) -> Document:
        """Apply one stock event."""
        if event.type == "StockItemOpened":
            doc = {"sku": event.data["sku"], "on_hand": 0, "reserved": 0, "available": 0}
            doc["created_at"] = event.recorded_at
        elif doc is None:
            raise ValueError(f"{event.type} before StockItemOpened")
        else:
            apply_stock(doc, event)
        doc.update(stream_id=str(event.stream_id), version=event.version, **stream_meta(event))
        return doc
