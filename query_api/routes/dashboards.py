"""Dashboards: sales per day, top products, order status counts.

A day's sales are its totals (one `sales_daily` document) and one `sales_daily_skus` document
per SKU sold that day. A day's SKUs are as many as the catalog, so `/sales-daily` lists at most
`sku_limit` of them per day (at most 200, the largest page of every list, DESIGN §6), the first
by SKU, and says how many there are (`skus_total`) when it cuts; `/sales-daily/{day}/skus`
pages through all of them. Every read is an index range on (date, sku) of bounded length.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, TypedDict, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from projections.documents import Document, SalesDayDocument, SalesDaySkuDocument, money
from query_api.deps import MAX_PAGE_SIZE, Db, Paging, Reader, fresh
from query_api.routes.common import ERRORS
from query_api.schemas import (
    OrderStatusResponse,
    Paginated,
    SalesDailyResponse,
    SalesDayResponse,
    SkuSales,
    TopProduct,
    TopProductsResponse,
)

router = APIRouter(prefix="/api/v1/dashboards", tags=["dashboards"])
STATUSES = ("pending", "confirmed", "rejected", "cancelled", "shipped")
MAX_DAYS = 366
DateFrom = Annotated[date | None, Query(description="First day (UTC), default 30 days ago")]
DateTo = Annotated[date | None, Query(description="Last day (UTC), default today")]


async def day_range(date_from: DateFrom = None, date_to: DateTo = None) -> tuple[str, str]:
    """The inclusive range of days, as stored ids (YYYY-MM-DD); at most a year."""
    end = date_to or datetime.now(UTC).date()
    # Near date.min the default start would underflow: the range then starts at date.min.
    start = date_from or max(date.min + timedelta(days=29), end) - timedelta(days=29)
    if start > end:
        raise HTTPException(422, detail="date_from is after date_to")
    if (end - start).days >= MAX_DAYS:
        raise HTTPException(422, detail=f"a range spans at most {MAX_DAYS} days")
    return start.isoformat(), end.isoformat()


Days = Annotated[tuple[str, str], Depends(day_range)]


class SkuTotals(TypedDict):
    """A row of the top-products aggregation: one SKU's sums over the days."""

    _id: str  # the SKU
    units: int
    revenue_cents: int


class StatusCount(TypedDict):
    """A row of the order-status aggregation."""

    _id: str  # the status
    n: int


SkuLimit = Annotated[
    int,
    Query(ge=1, le=MAX_PAGE_SIZE, description="SKUs listed per day at most (the first by SKU)"),
]
DayPath = Annotated[date, Path(description="The day (UTC), YYYY-MM-DD")]
# Only the row's figures: the counter's key, day and `_last` stay behind.
SKU_FIELDS = {"_id": 0, "sku": 1, "units": 1, "revenue_cents": 1}


def sku_sales(row: SalesDaySkuDocument) -> SkuSales:
    """A (day, SKU) counter as clients see it."""
    return SkuSales(sku=row["sku"], units=row["units"], revenue=money(row["revenue_cents"]))


async def sales_day(db: Db, doc: SalesDayDocument, limit: int) -> SalesDayResponse:
    """A day's totals with its first `limit` SKUs (and their number, if there are more)."""
    cursor = db.sales_daily_skus.find({"date": doc["date"]}, SKU_FIELDS).sort("sku", 1)
    rows = [sku_sales(row) async for row in cursor.limit(limit + 1)]
    total = None
    if len(rows) > limit:
        rows, total = rows[:limit], await db.sales_daily_skus.count_documents({"date": doc["date"]})
    return SalesDayResponse(
        date=doc["date"], orders=doc["orders"], revenue=doc["revenue"], skus=rows, skus_total=total
    )


@router.get(
    "/sales-daily",
    response_model=SalesDailyResponse,
    response_model_exclude_none=True,  # `skus_total` only on the days it is needed
    responses=ERRORS,
    dependencies=[Depends(fresh("sales_daily"))],
)
async def sales_daily(
    db: Db, _: Reader, days: Days, sku_limit: SkuLimit = MAX_PAGE_SIZE
) -> SalesDailyResponse:
    """Confirmed sales per day over a date range (days without sales are left out)."""
    cursor = db.sales_daily.find({"_id": {"$gte": days[0], "$lte": days[1]}}).sort("_id", 1)
    docs = [doc async for doc in cursor]
    revenue = sum(doc["revenue_cents"] for doc in docs)
    orders = sum(doc["orders"] for doc in docs)
    listed = await asyncio.gather(*(sales_day(db, doc, sku_limit) for doc in docs))
    return SalesDailyResponse(days=list(listed), orders=orders, revenue=money(revenue))


@router.get(
    "/sales-daily/{day}/skus",
    response_model=Paginated[SkuSales],
    responses=ERRORS,
    dependencies=[Depends(fresh("sales_daily"))],
)
async def sales_daily_skus(db: Db, _: Reader, day: DayPath, paging: Paging) -> dict[str, object]:
    """Confirmed sales of each SKU on one day, by SKU (an empty page for a day without sales)."""
    query = {"date": day.isoformat()}
    cursor = db.sales_daily_skus.find(query, SKU_FIELDS).sort("sku", 1)
    items = [sku_sales(row) async for row in cursor.skip(paging.skip).limit(paging.size)]
    return paging.wrap(items, await db.sales_daily_skus.count_documents(query))


@router.get(
    "/top-products",
    response_model=TopProductsResponse,
    responses=ERRORS,
    dependencies=[Depends(fresh("sales_daily"))],
)
async def top_products(
    db: Db,
    _: Reader,
    days: Days,
    by: Literal["units", "revenue"] = "units",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> TopProductsResponse:
    """Best-selling products over a date range, by units or by revenue."""
    key = "units" if by == "units" else "revenue_cents"
    pipeline: list[Document] = [
        {"$match": {"date": {"$gte": days[0], "$lte": days[1]}}},
        {
            "$group": {
                "_id": "$sku",
                "units": {"$sum": "$units"},
                "revenue_cents": {"$sum": "$revenue_cents"},
            }
        },
        {"$match": {"units": {"$gt": 0}}},
        {"$sort": {key: -1, "_id": 1}},
        {"$limit": limit},
    ]
    # An aggregation's rows have the shape its pipeline gives them: the one above.
    rows = [cast(SkuTotals, row) async for row in await db["sales_daily_skus"].aggregate(pipeline)]
    names = await product_names(db, [row["_id"] for row in rows])
    items = [
        TopProduct(
            sku=r["_id"],
            name=names.get(r["_id"]),
            units=r["units"],
            revenue=money(r["revenue_cents"]),
        )
        for r in rows
    ]
    return TopProductsResponse(by=by, items=items)


async def product_names(db: Db, skus: list[str]) -> dict[str, str]:
    """Current names of the SKUs (from the catalog read model)."""
    # Projected to the two fields read here: the rest of each ProductDocument stays behind.
    cursor = db.products.find({"sku": {"$in": skus}}, {"sku": 1, "name": 1})
    return {doc["sku"]: doc["name"] async for doc in cursor}


@router.get(
    "/order-status",
    response_model=OrderStatusResponse,
    responses=ERRORS,
    dependencies=[Depends(fresh("orders"))],
)
async def order_status(db: Db, _: Reader) -> OrderStatusResponse:
    """How many orders are in each status right now."""
    pipeline: list[Document] = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    counts = dict.fromkeys(STATUSES, 0)
    async for row in await db["orders"].aggregate(pipeline):
        group = cast(StatusCount, row)  # the shape the pipeline above gives its rows
        counts[group["_id"]] = group["n"]
    return OrderStatusResponse(counts=counts, total=sum(counts.values()))
