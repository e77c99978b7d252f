"""Dashboards: sales per day, top products, order status counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, TypedDict, cast

from fastapi import APIRouter, Depends, HTTPException, Query

from projections.documents import Document, SalesDayDocument, money
from query_api.deps import Db, Reader, fresh
from query_api.routes.common import ERRORS
from query_api.schemas import (
    OrderStatusResponse,
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


def sales_day(doc: SalesDayDocument) -> SalesDayResponse:
    """A day document as clients see it."""
    skus = [
        SkuSales(sku=row["sku"], units=row["units"], revenue=money(row["revenue_cents"]))
        for row in doc["skus"]
    ]
    return SalesDayResponse(
        date=doc["date"], orders=doc["orders"], revenue=doc["revenue"], skus=skus
    )


@router.get(
    "/sales-daily",
    response_model=SalesDailyResponse,
    responses=ERRORS,
    dependencies=[Depends(fresh("sales_daily"))],
)
async def sales_daily(db: Db, _: Reader, days: Days) -> SalesDailyResponse:
    """Confirmed sales per day over a date range (days without sales are left out)."""
    cursor = db.sales_daily.find({"_id": {"$gte": days[0], "$lte": days[1]}}).sort("_id", 1)
    docs = [doc async for doc in cursor]
    revenue = sum(doc["revenue_cents"] for doc in docs)
    orders = sum(doc["orders"] for doc in docs)
    return SalesDailyResponse(
        days=[sales_day(d) for d in docs], orders=orders, revenue=money(revenue)
    )


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
        {"$match": {"_id": {"$gte": days[0], "$lte": days[1]}}},
        {"$unwind": "$skus"},
        {
            "$group": {
                "_id": "$skus.sku",
                "units": {"$sum": "$skus.units"},
                "revenue_cents": {"$sum": "$skus.revenue_cents"},
            }
        },
        {"$match": {"units": {"$gt": 0}}},
        {"$sort": {key: -1, "_id": 1}},
        {"$limit": limit},
    ]
    # An aggregation's rows have the shape its pipeline gives them: the one above.
    rows = [cast(SkuTotals, row) async for row in await db["sales_daily"].aggregate(pipeline)]
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
