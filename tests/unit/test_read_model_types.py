"""The read-model TypedDicts: a misspelt field fails type checking, and they match the folds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from mypy import api

from eventstore.records import StoredEvent
from projections.audit_log import audit_entry
from projections.base import DocumentProjection
from projections.counters import Shape, Tally, by_key
from projections.documents import (
    AuditEntry,
    HistoryEntry,
    OrderDocument,
    OrderLine,
    ProductDocument,
    SalesDayDocument,
    SalesDaySkuDocument,
    SalesOrderState,
    StockDocument,
)
from projections.orders import OrdersProjection
from projections.products import ProductsProjection
from projections.sales_daily import (
    DAY,
    DAY_SKU,
    ORDER_EVENTS,
    day_tallies,
    fold_orders,
    sku_tallies,
)
from projections.stock import StockProjection
from tests.projections.conftest import History

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = {
    "reads_right.py": """
from projections.documents import ProductDocument, StockDocument

def price_of(doc: ProductDocument) -> str:
    return doc["price"]

def empty(doc: StockDocument) -> None:
    doc["available"] = 0
""",
    "reads_misspelt.py": """
from projections.documents import ProductDocument

def price_of(doc: ProductDocument) -> str:
    return doc["prize"]
""",
    "writes_misspelt.py": """
from projections.documents import StockDocument

def empty(doc: StockDocument) -> None:
    doc["availble"] = 0
""",
}


def test_mypy_refuses_a_misspelt_field_and_accepts_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, source in SNIPPETS.items():
        (tmp_path / name).write_text(source)
    monkeypatch.chdir(ROOT)  # the project's mypy settings, and `projections` importable
    report, _, _ = api.run(
        [*(str(tmp_path / name) for name in SNIPPETS), "--cache-dir", str(tmp_path / "cache")]
    )
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert [e for e in errors if "reads_right.py" in e] == [], report
    assert any('"ProductDocument" has no key "prize"' in e for e in errors), report
    assert any('"StockDocument" has no key "availble"' in e for e in errors), report


async def trading() -> list[StoredEvent]:
    """Products registered, renamed, repriced, discontinued; stock moved; orders in every end."""
    history = History()
    await history.product("MUG")
    await history.product("CUP", price="4.25")
    await history.rename("MUG", "Big mug")
    await history.reprice("MUG", "11.00")
    await history.discontinue("CUP", "no longer made")
    await history.receive("MUG", 10)
    confirmed = await history.order(("MUG", 2))
    rejected = await history.order(("MUG", 1))
    cancelled = await history.order(("MUG", 3))
    await history.reserve(confirmed, "MUG", 2)
    await history.confirm(confirmed)
    await history.reject(rejected, "out of stock")
    await history.confirm(cancelled)
    await history.cancel(cancelled, "changed mind")
    return history.events


def folded(projection: DocumentProjection[Any], events: list[StoredEvent]) -> list[Any]:
    """Every document the projection makes of `events`, as its write path stamps them."""
    docs: dict[str, Any] = {}
    for event in events:
        if event.type in projection.handles and (key := projection.key(event)) is not None:
            doc = projection.fold(docs.get(key), event)
            doc["_id"], doc["_last"] = key, event.token
            docs[key] = doc
    return list(docs.values())


def counted(shape: Shape, tallies: list[Tally]) -> list[dict[str, Any]]:
    """The counter documents the tallies make from nothing."""
    return [shape.document(key, group, group[-1].token) for key, group in by_key(tallies).items()]


def assert_shape(kind: type, docs: Iterable[Mapping[str, Any]]) -> None:
    """Each document has the required keys and no other than the optional ones; all show up."""
    required, optional = set(kind.__required_keys__), set(kind.__optional_keys__)
    seen: set[str] = set()
    for doc in docs:
        assert required <= set(doc) <= required | optional, (kind.__name__, doc)
        seen |= set(doc)
    assert seen == required | optional, kind.__name__


async def test_every_document_type_has_exactly_the_fields_its_fold_writes() -> None:
    events = await trading()
    # fold is pure: the projections' database is never touched.
    products = folded(ProductsProjection(None), events)
    orders = folded(OrdersProjection(None), events)
    assert_shape(ProductDocument, products)
    assert_shape(StockDocument, folded(StockProjection(None), events))
    assert_shape(OrderDocument, orders)
    assert_shape(OrderLine, [line for order in orders for line in order["lines"]])
    assert_shape(HistoryEntry, [entry for order in orders for entry in order["history"]])
    states, effects = fold_orders({}, [e for e in events if e.type in ORDER_EVENTS])
    assert_shape(SalesOrderState, states.values())
    assert_shape(SalesDayDocument, counted(DAY, day_tallies(effects)))
    assert_shape(SalesDaySkuDocument, counted(DAY_SKU, sku_tallies(effects)))
    assert_shape(AuditEntry, [audit_entry(event) for event in events])
    assert {p["sku"] for p in products} == {"MUG", "CUP"} and len(orders) == 3
