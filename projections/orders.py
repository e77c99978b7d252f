"""The orders read model: one document per order, with its status history."""

from __future__ import annotations

from eventstore.records import StoredEvent
from projections.base import DocumentProjection
from projections.documents import HistoryEntry, OrderDocument, cents

STATUS_BY_EVENT = {
    "OrderPlaced": "pending",
    "OrderConfirmed": "confirmed",
    "OrderRejected": "rejected",
    "OrderCancelled": "cancelled",
    "OrderShipped": "shipped",
}


class OrdersProjection(DocumentProjection[OrderDocument]):
    """`orders`: {id, customer_id, status, lines, total, placed_at, history, version}."""

    name = "orders"
    collection_name = "orders"
    handles = frozenset(STATUS_BY_EVENT)

    def key(self, event: StoredEvent) -> str | None:
        """One document per order stream."""
        return str(event.stream_id)

    def fold(self, doc: OrderDocument | None, event: StoredEvent) -> OrderDocument:
        """Apply one order event."""
        if event.type == "OrderPlaced":
            doc = placed(event)
        elif doc is None:
            raise ValueError(f"{event.type} before OrderPlaced")
        status = STATUS_BY_EVENT[event.type]
        entry: HistoryEntry = {"status": status, "at": event.recorded_at, "position": event.token}
        if "reason" in event.data:
            entry["reason"] = doc["reason"] = event.data["reason"]
        doc["history"].append(entry)
        doc["status"], doc["version"] = status, event.version
        doc["updated_at"] = event.recorded_at
        return doc


def placed(event: StoredEvent) -> OrderDocument:
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
        # Set again by the fold, as by every event after: here so that the document is whole.
        "status": STATUS_BY_EVENT[event.type],
        "version": event.version,
        "updated_at": event.recorded_at,
        "_id": str(event.stream_id),
        "_last": event.token,
    }
