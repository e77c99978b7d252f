"""Stock queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from projections.documents import Document, StockDocument
from query_api.deps import Db, Paging, Reader, fresh, fresh_document
from query_api.routes.common import ERRORS, NOT_FOUND, found
from query_api.routes.products import SkuPath, canonical_sku
from query_api.schemas import Paginated, StockResponse

router = APIRouter(prefix="/api/v1/stock", tags=["stock"])
# One SKU's stock: the wait for X-Min-Position can end on the document itself. Depends is
# untyped: this alias is where the `stock` document it reads takes its type.
Fresh = Annotated[StockDocument | None, Depends(fresh_document("stock", "sku", canonical_sku))]


def stock_response(doc: StockDocument) -> StockResponse:
    """A stock document as clients see it."""
    return StockResponse(
        sku=doc["sku"],
        on_hand=doc["on_hand"],
        reserved=doc["reserved"],
        available=doc["available"],
        version=doc["version"],
        updated_at=doc["updated_at"],
    )


@router.get(
    "",
    response_model=Paginated[StockResponse],
    responses=ERRORS,
    dependencies=[Depends(fresh("stock"))],
)
async def list_stock(
    db: Db,
    _: Reader,
    paging: Paging,
    low_stock: Annotated[bool, Query(description="Only SKUs at or below the threshold")] = False,
    threshold: Annotated[int, Query(ge=0, le=1_000_000)] = 5,
) -> dict[str, object]:
    """Stock per SKU, optionally only what is running low; by SKU."""
    query: Document = {"available": {"$lte": threshold}} if low_stock else {}
    cursor = db.stock.find(query).sort("_id", 1).skip(paging.skip).limit(paging.size)
    items = [stock_response(doc) async for doc in cursor]
    return paging.wrap(items, await db.stock.count_documents(query))


@router.get("/{sku}", response_model=StockResponse, responses=NOT_FOUND)
async def stock_of(sku: SkuPath, document: Fresh, _: Reader) -> StockResponse:
    """Stock of one SKU (case-insensitive)."""
    return stock_response(found(document, f"stock of {sku.upper()}"))
