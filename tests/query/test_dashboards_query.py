"""Dashboards: sales per day (confirmed orders only), top products, order status counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import httpx

from tests.query.helpers import (
    ORDER_STATUS,
    ORDERS,
    SALES_DAILY,
    TOP_PRODUCTS,
    Auth,
    command,
    place,
    read,
    register,
    settle_orders,
    tag,
)


@dataclass
class Seed:
    """SKUs cheap (1.00), mid (10.00), dear (50.00); the day the orders were placed."""

    cheap: str
    mid: str
    dear: str
    day: date
    token: str


async def seed_sales(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> Seed:
    """Confirmed: 5 cheap, 1 dear, 2 mid (then shipped); rejected: 100 dear; cancelled: 20 cheap.

    By units: cheap 5 > mid 2 > dear 1; by revenue: dear 50 > mid 20 > cheap 5.
    """
    t = tag()
    cheap, mid, dear = f"CHEAP-{t}", f"MID-{t}", f"DEAR-{t}"
    for sku, name, price, stock in (
        (cheap, "Pencil", "1.00", 100),
        (mid, "Notebook", "10.00", 100),
        (dear, "Fountain pen", "50.00", 5),
    ):
        await register(api, auth(), sku, name, price, f"dash-{t}", stock)
    customer = str(uuid4())
    order_ids = []
    for lines in ({cheap: 5}, {dear: 1}, {mid: 2}, {dear: 100}, {cheap: 20}):
        order_id, token = await place(api, auth(), customer, **lines)
        order_ids.append(order_id)
    token = await settle_orders(query, reader, token, order_ids)
    _, _, shipped, _, cancelled = order_ids
    await command(api, auth(), f"{ORDERS}/{shipped}/ship", {}, 200)
    done = await command(api, auth(), f"{ORDERS}/{cancelled}/cancel", {"reason": "no"}, 200)
    token = done.headers["X-Position"]
    order = await read(query, reader, f"{ORDERS}/{shipped}", token)
    assert order["status"] == "shipped"
    day = date.fromisoformat(order["placed_at"][:10])
    return Seed(cheap, mid, dear, day, token)


async def test_sales_per_day_count_confirmed_orders_only(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_sales(api, query, auth, reader)
    today = s.day.isoformat()
    expected_day = {
        "date": today,
        "orders": 3,
        "revenue": "75.00",
        "skus": sorted(
            [
                {"sku": s.cheap, "units": 5, "revenue": "5.00"},
                {"sku": s.mid, "units": 2, "revenue": "20.00"},
                {"sku": s.dear, "units": 1, "revenue": "50.00"},
            ],
            key=lambda row: str(row["sku"]),
        ),
    }
    including: list[dict[str, Any]] = [
        {"date_from": today, "date_to": today},
        {"date_from": (s.day - timedelta(days=3)).isoformat(), "date_to": today},
        {"date_from": today, "date_to": (s.day + timedelta(days=3)).isoformat()},
        {},  # default: the last 30 days up to today (UTC)
    ]
    for params in including:
        body = await read(query, reader, SALES_DAILY, s.token, **params)
        assert body == {"days": [expected_day], "orders": 3, "revenue": "75.00"}, params

    yesterday = (s.day - timedelta(days=1)).isoformat()
    excluding: list[dict[str, Any]] = [
        {"date_from": (s.day - timedelta(days=10)).isoformat(), "date_to": yesterday},
        {"date_to": yesterday},
        {
            "date_from": (s.day + timedelta(days=1)).isoformat(),
            "date_to": (s.day + timedelta(days=3)).isoformat(),
        },
    ]
    for params in excluding:
        body = await read(query, reader, SALES_DAILY, s.token, **params)
        assert body == {"days": [], "orders": 0, "revenue": "0.00"}, params


async def test_top_products_by_units_and_by_revenue_differ(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_sales(api, query, auth, reader)
    today = s.day.isoformat()
    by_units = await read(query, reader, TOP_PRODUCTS, s.token, by="units")
    assert by_units["by"] == "units"
    assert [(r["sku"], r["name"], r["units"], r["revenue"]) for r in by_units["items"]] == [
        (s.cheap, "Pencil", 5, "5.00"),
        (s.mid, "Notebook", 2, "20.00"),
        (s.dear, "Fountain pen", 1, "50.00"),
    ]
    default = await read(query, reader, TOP_PRODUCTS, s.token, date_from=today, date_to=today)
    assert default == by_units  # units is the default
    by_revenue = await read(query, reader, TOP_PRODUCTS, s.token, by="revenue")
    assert by_revenue["by"] == "revenue"
    assert [(r["sku"], r["revenue"]) for r in by_revenue["items"]] == [
        (s.dear, "50.00"),
        (s.mid, "20.00"),
        (s.cheap, "5.00"),
    ]
    one = await read(query, reader, TOP_PRODUCTS, s.token, by="units", limit=1)
    assert [r["sku"] for r in one["items"]] == [s.cheap]
    one = await read(query, reader, TOP_PRODUCTS, s.token, by="revenue", limit=1)
    assert [r["sku"] for r in one["items"]] == [s.dear]
    two = await read(query, reader, TOP_PRODUCTS, s.token, by="revenue", limit=2)
    assert [r["sku"] for r in two["items"]] == [s.dear, s.mid]
    yesterday = (s.day - timedelta(days=1)).isoformat()
    empty = await read(query, reader, TOP_PRODUCTS, s.token, date_to=yesterday)
    assert empty["items"] == []


async def test_order_status_counts_every_status(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_sales(api, query, auth, reader)
    body = await read(query, reader, ORDER_STATUS, s.token)
    assert body == {
        "counts": {"pending": 0, "confirmed": 2, "rejected": 1, "cancelled": 1, "shipped": 1},
        "total": 5,
    }


async def test_bad_date_ranges_and_dashboard_parameters_are_422(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    ok = await read(
        query, reader, SALES_DAILY, date_from="2024-01-01", date_to="2024-12-31"
    )  # 366 days
    assert ok == {"days": [], "orders": 0, "revenue": "0.00"}
    params: dict[str, Any]
    for path in (SALES_DAILY, TOP_PRODUCTS):
        for params in (
            {"date_from": "2024-03-02", "date_to": "2024-03-01"},
            {"date_from": "2024-01-01", "date_to": "2025-01-01"},  # 367 days
            {"date_from": "2020-01-01", "date_to": "2024-01-01"},
            {"date_from": "2000-01-01"},  # up to today: decades
            {"date_from": "2024-02-30"},
            {"date_to": "not-a-date"},
            {"date_from": '{"$gt": ""}'},
            {"date_to": "01/02/2024"},
        ):
            response = await query.get(path, params=params, headers=reader)
            assert response.status_code == 422, (path, params, response.text)
            assert "detail" in response.json()
    for params in (
        {"by": "profit"},
        {"by": '{"$ne": null}'},
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
    ):
        response = await query.get(TOP_PRODUCTS, params=params, headers=reader)
        assert response.status_code == 422, (params, response.text)


async def test_an_early_date_to_alone_is_not_a_500(
    query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    """The default start (30 days before date_to) must not overflow: 422 or an empty answer."""
    for path in (SALES_DAILY, TOP_PRODUCTS):
        for date_to in ("0001-01-01", "0001-01-29"):
            response = await query.get(path, params={"date_to": date_to}, headers=reader)
            assert response.status_code in (200, 422), (path, date_to, response.text)


async def test_a_day_lists_its_first_skus_and_its_skus_page_through_all_of_them(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    """A day's SKUs grow with the catalog: cut at `sku_limit` (≤ 200), paged by their route."""
    s = await seed_sales(api, query, auth, reader)
    today = s.day.isoformat()
    sold = sorted([(s.cheap, 5, "5.00"), (s.mid, 2, "20.00"), (s.dear, 1, "50.00")])
    rows = [{"sku": sku, "units": units, "revenue": revenue} for sku, units, revenue in sold]
    cut = await read(query, reader, SALES_DAILY, s.token, date_to=today, sku_limit=2)
    day = {"date": today, "orders": 3, "revenue": "75.00"}
    totals = {"orders": 3, "revenue": "75.00"}
    assert cut == {"days": [day | {"skus": rows[:2], "skus_total": 3}], **totals}
    whole = await read(query, reader, SALES_DAILY, s.token, date_to=today, sku_limit=3)
    assert whole["days"] == [day | {"skus": rows}]  # no count when nothing is left out
    skus = f"{SALES_DAILY}/{today}/skus"
    pages = [await read(query, reader, skus, s.token, page=n, size=2) for n in (1, 2, 3)]
    assert [(p["items"], p["total"]) for p in pages] == [(rows[:2], 3), (rows[2:], 3), ([], 3)]
    before = f"{SALES_DAILY}/{(s.day - timedelta(days=1)).isoformat()}/skus"
    assert await read(query, reader, before) == {"items": [], "total": 0, "page": 1, "size": 50}
    for path, params in (
        (SALES_DAILY, {"sku_limit": 0}),
        (SALES_DAILY, {"sku_limit": 201}),
        (skus, {"size": 201}),
        (f"{SALES_DAILY}/2024-02-30/skus", {}),
        (f"{SALES_DAILY}/today/skus", {}),
    ):
        response = await query.get(path, params=params, headers=reader)
        assert response.status_code == 422, (path, params, response.text)
