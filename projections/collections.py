"""Each read model's logical collections: what readers and operations need without the folds."""

from __future__ import annotations

# Projection -> its logical collections (a rebuild makes a new generation of each).
COLLECTIONS = {
    "products": ["products"],
    "stock": ["stock"],
    "orders": ["orders"],
    "sales_daily": ["sales_daily", "sales_daily_skus", "sales_orders"],
    "audit_log": ["audit_log"],
}
