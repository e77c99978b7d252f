"""The orders read model: one document per order, with its status history."""

from __future__ import annotations

from eventstore.records import StoredEvent
from projections.base import Document, DocumentProjection, cents, stream_meta

STATUS_BY_EVENT = {
    "OrderPlaced": "pending",
    "OrderConfirmed": "confirmed",
    "OrderRejected": "rejected",
    "OrderCancelled": "cancelled",
    "OrderShipped": "shipped",
}


class OrdersProjection(DocumentProjection):
    """`orders`: {id, customer_id, status, lines, total, placed_at, history, version}."""

    name = "orders"
    collection_name = "orders"
    handles = frozenset(STATUS_BY_EVENT)

    def key(self, event: StoredEvent) -> str | None:
        """One document per order stream."""
        return str(event.stream_id)

    def fold(self, doc: Document | None, event: StoredEvent) -> Document:
        """Apply one order event."""
        if event.type == "OrderPlaced":
            doc = placed(event)
        elif doc is None:
            raise ValueError(f"{event.type} before OrderPlaced")
        status = STATUS_BY_EVENT[event.type]
        entry = {"status": status, "at": event.recorded_at, "position": event.token}
        if "reason" in event.data:
            entry["reason"] = doc["reason"] = event.data["reason"]
        doc["history"].append(entry)
        doc.update(status=status, version=event.version, **stream_meta(event))
        return doc


def placed(event: StoredEvent) -> Document:
    """A new order document."""
    data = event.data
    return {
        "id": str(event.stream_id),
        "customer_id": data["customer_id"],
        "lines": data["lines"],
        "skus": [line["sku"] for line in data["lines"]],
        "total": data["total"],
        "total_cents": cents(data["total"]),
        "placed_at": event.recorded_at,
        "history": [],
    }
