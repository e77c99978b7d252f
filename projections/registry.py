"""Every projection by name, and the indexes their queries need."""

from __future__ import annotations

from collections.abc import Mapping

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from projections.audit_log import AuditLogProjection
from projections.collections import COLLECTIONS
from projections.documents import Document
from projections.orders import OrdersProjection
from projections.products import ProductsProjection
from projections.sales_daily import SalesDailyProjection
from projections.stock import StockProjection
from subscriptions import PROJECTION_NAMES, Subscriber

PROJECTIONS = {
    cls.name: cls
    for cls in (
        ProductsProjection,
        StockProjection,
        OrdersProjection,
        SalesDailyProjection,
        AuditLogProjection,
    )
}
# The names other processes use without importing any projection: the same, in the same order.
assert tuple(PROJECTIONS) == PROJECTION_NAMES == tuple(COLLECTIONS), "projection names differ"

# Logical collection -> indexes, one per query the query API makes.
INDEXES: dict[str, list[IndexModel]] = {
    "products": [
        IndexModel([("sku", ASCENDING)], unique=True),
        IndexModel([("category", ASCENDING), ("price_cents", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("price_cents", ASCENDING)]),
        IndexModel([("price_cents", ASCENDING)]),
        IndexModel([("available", ASCENDING)]),
        IndexModel([("name", ASCENDING)]),
    ],
    "stock": [IndexModel([("available", ASCENDING)])],
    "orders": [
        IndexModel([("customer_id", ASCENDING), ("placed_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("placed_at", DESCENDING)]),
        IndexModel([("placed_at", DESCENDING)]),
    ],
    # A day's SKU rows in SKU order (the sales-daily route), and a range of days (top products).
    "sales_daily_skus": [IndexModel([("date", ASCENDING), ("sku", ASCENDING)])],
    "audit_log": [
        IndexModel([("stream_id", ASCENDING), ("_id", DESCENDING)]),
        IndexModel([("actor", ASCENDING), ("_id", DESCENDING)]),
        IndexModel([("type", ASCENDING), ("_id", DESCENDING)]),
        # The ops console follows one business operation: by correlation id, newest first.
        IndexModel([("correlation_id", ASCENDING), ("_id", DESCENDING)]),
        IndexModel([("recorded_at", DESCENDING)]),
    ],
}


def build(
    name: str, db: AsyncDatabase[Document], names: Mapping[str, str] | None = None
) -> Subscriber:
    """The projection called `name`, writing to the physical collections `names` gives."""
    projection: Subscriber = PROJECTIONS[name](db, names)
    return projection


async def ensure_indexes(
    db: AsyncDatabase[Document],
    name: str,
    names: Mapping[str, str] | None = None,
    unique_only: bool = False,
) -> None:
    """Create the indexes of a projection's collections (idempotent); with `unique_only`, only
    those that refuse a write."""
    names = names or {}
    for collection in COLLECTIONS[name]:
        models = [
            m for m in INDEXES.get(collection, []) if m.document.get("unique") or not unique_only
        ]
        if models:
            await db[names.get(collection, collection)].create_indexes(models)
