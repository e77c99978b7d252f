"""GET /api/v1/stock: the low-stock filter with its threshold, pagination, one SKU."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx

from tests.query.helpers import STOCK, Auth, ids, place, read, register, settle_orders, tag


async def seed_stock(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> tuple[list[str], str]:
    """SKUs with available 10, 5, 2 (10 on hand, 8 reserved) and 3; (SKUs, token)."""
    t = tag()
    skus = [f"S1-{t}", f"S2-{t}", f"S3-{t}", f"S4-{t}"]
    for sku, quantity in zip(skus, (10, 5, 10, 3), strict=True):
        await register(api, auth(), sku, f"Item {sku}", "1.00", f"stock-{t}", quantity)
    order_id, token = await place(api, auth(), str(uuid4()), **{skus[2]: 8})
    return skus, await settle_orders(query, reader, token, [order_id])


async def test_low_stock_uses_available_stock_and_an_inclusive_threshold(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    skus, token = await seed_stock(api, query, auth, reader)
    _, s2, s3, s4 = skus

    async def low(**params: Any) -> list[str]:
        body = await read(query, reader, STOCK, token, **params)
        assert body["total"] == len(body["items"])
        return ids(body, "sku")

    assert await low() == skus
    assert await low(low_stock="false") == skus
    assert await low(low_stock="false", threshold=0) == skus  # no filter without low_stock
    assert await low(low_stock="true") == [s2, s3, s4]  # default threshold 5, inclusive
    assert await low(low_stock="true", threshold=2) == [s3]  # 2 available although 10 on hand
    assert await low(low_stock="true", threshold=3) == [s3, s4]
    assert await low(low_stock="true", threshold=1) == []
    assert await low(low_stock="true", threshold=10) == skus

    [row] = (await read(query, reader, STOCK, token, low_stock="true", threshold=2))["items"]
    assert (row["on_hand"], row["reserved"], row["available"]) == (10, 8, 2)

    for params in (
        {"threshold": -1},
        {"threshold": "five"},
        {"threshold": '{"$gt": 0}'},
        {"low_stock": "perhaps"},
        {"low_stock": '{"$ne": null}'},
        {"size": 201},
        {"size": 0},
        {"page": 0},
        {"page": -1},
    ):
        response = await query.get(STOCK, params=params, headers=reader)
        assert response.status_code == 422, (params, response.text)


async def test_stock_pages_are_sorted_by_sku(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    skus, token = await seed_stock(api, query, auth, reader)
    pages = []
    for page in (1, 2, 3):
        body = await read(query, reader, STOCK, token, page=page, size=3)
        assert (body["total"], body["page"], body["size"]) == (4, page, 3)
        pages.append(ids(body, "sku"))
    assert pages == [skus[:3], skus[3:], []]
    low = await read(query, reader, STOCK, token, low_stock="true", page=2, size=2)
    assert (ids(low, "sku"), low["total"]) == ([skus[3]], 3)


async def test_stock_of_one_sku_in_any_case_and_404(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    skus, token = await seed_stock(api, query, auth, reader)
    for spelling in (skus[2], skus[2].lower()):
        body = await read(query, reader, f"{STOCK}/{spelling}", token)
        assert body["sku"] == skus[2]
        assert (body["on_hand"], body["reserved"], body["available"]) == (10, 8, 2)
    missing = await read(query, reader, f"{STOCK}/NOPE-{tag()}", expect=404)
    assert "not found" in str(missing["detail"])
    for bad in ("-X", "$ne", "a" * 65, "A%2FB"):
        response = await query.get(f"{STOCK}/{bad}", headers=reader)
        assert response.status_code in (404, 422), (bad, response.text)
