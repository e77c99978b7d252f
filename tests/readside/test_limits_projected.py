"""The largest values the command API accepts are projected and readable through the query API.

A product at the largest price with the most stock on hand, an order at the largest total, and
an order of the most lines at the largest quantity: every read model stores them (no integer
leaves int64) and the worker parks nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from projections.checkpoints import ParkedEvents
from tests.query.helpers import (
    ORDERS,
    PRODUCTS,
    SALES_DAILY,
    STOCK,
    command,
    read,
    register,
    settle_orders,
    tag,
)
from tests.readside.test_workers import NAMES

Auth = Callable[..., dict[str, str]]
Db = AsyncDatabase[dict[str, Any]]
MAX_ON_HAND = 1_000_000_000_000


async def place_lines(
    api: httpx.AsyncClient, headers: dict[str, str], lines: list[Any]
) -> tuple[str, str]:
    """Place an order of (sku, quantity) lines; (its id, X-Position)."""
    body = {"customer_id": str(uuid4()), "lines": [{"sku": s, "quantity": q} for s, q in lines]}
    response = await command(api, headers, ORDERS, body, 201)
    return str(response.json()["id"]), response.headers["X-Position"]


async def test_the_largest_accepted_values_are_projected_and_readable(
    api: httpx.AsyncClient,
    query: httpx.AsyncClient,
    auth: Auth,
    reader: dict[str, str],
    mongo_db: Db,
) -> None:
    group = tag()
    dear = f"DEAR-{group}"
    await register(api, auth(), dear, "Dear", "1000000.00", f"lim-{group}", MAX_ON_HAND)
    pennies = [f"PENNY-{group}-{i:03d}" for i in range(100)]
    for start in range(0, 100, 25):  # bounded concurrency: a quarter of the catalog at a time
        await asyncio.gather(
            *(
                register(api, auth(), s, "Penny", "0.01", f"lim-{group}", 1_000_000)
                for s in pennies[start : start + 25]
            )
        )

    largest_total, _ = await place_lines(api, auth(), [(dear, 100)])
    most_lines, token = await place_lines(api, auth(), [(s, 1_000_000) for s in pennies])
    token = await settle_orders(query, reader, token, [largest_total, most_lines])

    order = await read(query, reader, f"{ORDERS}/{largest_total}", token)
    assert (order["status"], order["total"]) == ("confirmed", "100000000.00")
    order = await read(query, reader, f"{ORDERS}/{most_lines}", token)
    assert (order["status"], order["total"]) == ("confirmed", "1000000.00")
    assert len(order["lines"]) == 100
    stored = await mongo_db["orders"].find_one({"id": largest_total})
    assert stored is not None and stored["total_cents"] == 10_000_000_000

    product = await read(query, reader, f"{PRODUCTS}/by-sku/{dear}", token)
    assert product["price"] == "1000000.00"
    assert (product["on_hand"], product["reserved"]) == (MAX_ON_HAND, 100)
    stock = await read(query, reader, f"{STOCK}/{dear}", token)
    assert (stock["on_hand"], stock["available"]) == (MAX_ON_HAND, MAX_ON_HAND - 100)
    stock = await read(query, reader, f"{STOCK}/{pennies[-1]}", token)
    assert (stock["reserved"], stock["available"]) == (1_000_000, 0)

    sales = await read(query, reader, SALES_DAILY, token)
    assert (sales["orders"], sales["revenue"]) == (2, "101000000.00")
    units = {row["sku"]: row["units"] for day in sales["days"] for row in day["skus"]}
    assert units[dear] == 100 and units[pennies[0]] == 1_000_000

    for name in NAMES:
        assert await ParkedEvents(mongo_db).list(name) == [], name
