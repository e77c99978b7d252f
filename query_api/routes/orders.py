"""Order queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from projections.documents import Document, HistoryEntry, OrderDocument
from query_api.deps import Db, Paging, Reader, canonical_uuid, fresh, fresh_document
from query_api.routes.common import ERRORS, NOT_FOUND, between, found, utc
from query_api.schemas import OrderLineResponse, OrderResponse, Paginated, StatusChange

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])
# One order by id: the wait for X-Min-Position can end on the document itself. Depends is
# untyped: this alias is where the `orders` document it reads takes its type.
Fresh = Annotated[
    OrderDocument | None, Depends(fresh_document("orders", "order_id", canonical_uuid))
]
Status = Literal["pending", "confirmed", "rejected", "cancelled", "shipped"]


def order_response(doc: OrderDocument) -> OrderResponse:
    """An order document as clients see it."""
    lines = [
        OrderLineResponse(sku=line["sku"], quantity=line["quantity"], unit_price=line["unit_price"])
        for line in doc["lines"]
    ]
    # Annotated: `get` of a misspelt key is an `object`, which type checking refuses here.
    reason: str | None = doc.get("reason")
    return OrderResponse(
        id=doc["id"],
        customer_id=doc["customer_id"],
        status=doc["status"],
        lines=lines,
        total=doc["total"],
        placed_at=doc["placed_at"],
        reason=reason,
        history=[status_change(entry) for entry in doc["history"]],
        version=doc["version"],
    )


def status_change(entry: HistoryEntry) -> StatusChange:
    """One step of an order's history as clients see it."""
    reason: str | None = entry.get("reason")  # annotated, as in `order_response`
    return StatusChange(
        status=entry["status"], at=entry["at"], reason=reason, position=entry["position"]
    )


@router.get(
    "",
    response_model=Paginated[OrderResponse],
    responses=ERRORS,
    dependencies=[Depends(fresh("orders"))],
)
async def list_orders(
    db: Db,
    _: Reader,
    paging: Paging,
    customer_id: UUID | None = None,
    status: Status | None = None,
    placed_from: Annotated[datetime | None, Query(description="ISO date-time, inclusive")] = None,
    placed_to: Annotated[datetime | None, Query(description="ISO date-time, inclusive")] = None,
) -> dict[str, object]:
    """Orders by customer, status and placing time; newest first."""
    query: Document = {}
    if customer_id is not None:
        query["customer_id"] = str(customer_id)
    if status is not None:
        query["status"] = status
    start, end = (utc(t) if t else None for t in (placed_from, placed_to))
    query |= between("placed_at", start, end)
    cursor = db.orders.find(query).sort([("placed_at", -1), ("_id", 1)])
    items = [order_response(doc) async for doc in cursor.skip(paging.skip).limit(paging.size)]
    return paging.wrap(items, await db.orders.count_documents(query))


@router.get("/{order_id}", response_model=OrderResponse, responses=NOT_FOUND)
async def order(order_id: UUID, document: Fresh, _: Reader) -> OrderResponse:
    """One order with its status history."""
    return order_response(found(document, f"order {order_id}"))
