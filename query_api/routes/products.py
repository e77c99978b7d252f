"""Catalog queries."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query

from projections.documents import Document, ProductDocument, cents
from query_api.deps import Db, Paging, Reader, canonical_uuid, fresh, fresh_document
from query_api.routes.common import ERRORS, NOT_FOUND, found
from query_api.schemas import Paginated, ProductResponse

router = APIRouter(prefix="/api/v1/products", tags=["products"])
FRESH = [Depends(fresh("products"))]
# One product by id: the wait for X-Min-Position can end on the document itself. Depends is
# untyped: this alias is where the `products` document it reads takes its type.
Fresh = Annotated[
    ProductDocument | None, Depends(fresh_document("products", "product_id", canonical_uuid))
]
SORTS = {
    "sku": [("sku", 1)],
    "-sku": [("sku", -1)],
    "name": [("name", 1), ("sku", 1)],
    "-name": [("name", -1), ("sku", 1)],
    "price": [("price_cents", 1), ("sku", 1)],
    "-price": [("price_cents", -1), ("sku", 1)],
    "available": [("available", 1), ("sku", 1)],
    "-available": [("available", -1), ("sku", 1)],
}
Price = Annotated[Decimal | None, Query(ge=0, max_digits=12, decimal_places=2, examples=["10.00"])]
SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SkuPath = Annotated[str, Path(pattern=SKU.pattern)]


def product_response(doc: ProductDocument) -> ProductResponse:
    """A product document as clients see it."""
    # Documents projected before units existed have none. Annotated: `get` of a misspelt key
    # is an `object`, which type checking refuses here.
    unit: str = doc.get("unit", "each")
    return ProductResponse(
        id=doc["id"],
        sku=doc["sku"],
        name=doc["name"],
        description=doc["description"],
        category=doc["category"],
        price=doc["price"],
        unit=unit,
        status=doc["status"],
        on_hand=doc["on_hand"],
        reserved=doc["reserved"],
        available=doc["available"],
        version=doc["version"],
        updated_at=doc["updated_at"],
    )


def canonical_sku(raw: str) -> str:
    """A stock document's key: the SKU upper-cased; ValueError when it is not one."""
    if not SKU.match(raw):
        raise ValueError(f"not a SKU: {raw!r}")
    return raw.upper()


async def product_filter(
    category: Annotated[str | None, Query(max_length=100)] = None,
    status: Literal["active", "discontinued"] | None = None,
    min_price: Price = None,
    max_price: Price = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in the name")] = None,
    in_stock: Annotated[bool | None, Query(description="Only with stock available")] = None,
) -> Document:
    """The MongoDB filter built from typed parameters only (values are never operators)."""
    query: Document = {}
    if category is not None:
        query["category"] = category
    if status is not None:
        query["status"] = status
    prices = {k: cents(v) for k, v in (("$gte", min_price), ("$lte", max_price)) if v is not None}
    if prices:
        query["price_cents"] = prices
    if q:
        query["name"] = {"$regex": re.escape(q), "$options": "i"}
    if in_stock is not None:
        query["available"] = {"$gt": 0} if in_stock else {"$lte": 0}
    return query


@router.get("", response_model=Paginated[ProductResponse], responses=ERRORS, dependencies=FRESH)
async def list_products(
    db: Db,
    _: Reader,
    paging: Paging,
    query: Annotated[Document, Depends(product_filter)],
    sort: Literal[tuple(SORTS)] = "sku",  # type: ignore[valid-type]
) -> dict[str, object]:
    """Products filtered by category, status, price range, name text and stock; paginated."""
    cursor = db.products.find(query).sort(SORTS[sort]).skip(paging.skip).limit(paging.size)
    items = [product_response(doc) async for doc in cursor]
    return paging.wrap(items, await db.products.count_documents(query))


@router.get(
    "/by-sku/{sku}", response_model=ProductResponse, responses=NOT_FOUND, dependencies=FRESH
)
async def product_by_sku(sku: SkuPath, db: Db, _: Reader) -> ProductResponse:
    """One product by SKU (case-insensitive)."""
    doc = await db.products.find_one({"sku": sku.upper()})
    return product_response(found(doc, f"product {sku.upper()}"))


@router.get("/{product_id}", response_model=ProductResponse, responses=NOT_FOUND)
async def product(product_id: UUID, document: Fresh, _: Reader) -> ProductResponse:
    """One product by id."""
    return product_response(found(document, f"product {product_id}"))
