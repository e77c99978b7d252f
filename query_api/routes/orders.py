"""Order queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from projections.documents import Document
from query_api.deps import Db, Paging, Reader, canonical_uuid, fresh, fresh_document
from query_api.routes.common import ERRORS, NOT_FOUND, between, found, utc
from query_api.schemas import OrderResponse, Paginated

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])
# One order by id: the wait for X-Min-Position can end on the document itself.
Fresh = Annotated[Document | None, Depends(fresh_document("orders", "order_id", canonical_uuid))]
Status = Literal["pending", "confirmed", "rejected", "cancelled", "shipped"]


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
    cursor = db["orders"].find(query).sort([("placed_at", -1), ("_id", 1)])
    items = [doc async for doc in cursor.skip(paging.skip).limit(paging.size)]
    return paging.wrap(items, await db["orders"].count_documents(query))


@router.get("/{order_id}", response_model=OrderResponse, responses=NOT_FOUND)
async def order(order_id: UUID, document: Fresh, _: Reader) -> Document:
    """One order with its status history."""
    return found(document, f"order {order_id}")
