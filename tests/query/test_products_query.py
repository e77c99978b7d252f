"""GET /api/v1/products: typed filters, every sort, pagination, by id and by SKU."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from query_api.routes.products import SORTS
from tests.query.helpers import PRODUCTS, Auth, command, ids, read, register, tag


async def seed_catalog(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[dict[str, str], str]:
    """Two categories, one discontinued product, some stock; (SKUs by key, last token)."""
    t = tag()
    kitchen, garden = f"kitchen-{t}", f"garden-{t}"
    rows = {
        "kettle": (f"K1-{t}", "Steel Kettle", "25.00", kitchen, 4),
        "cup": (f"K2-{t}", "Tea Cup (large)", "4.00", kitchen, 0),
        "teapot": (f"K3-{t}", "Old Teapot", "15.00", kitchen, 2),
        "hose": (f"G1-{t}", "Garden Hose", "10.00", garden, 0),
        "can": (f"G2-{t}", "Watering can No. 5", "9.99", garden, 1),
    }
    skus: dict[str, str] = {"kitchen": kitchen, "garden": garden}
    for key, (sku, name, price, category, stock) in rows.items():
        product_id, _ = await register(api, headers, sku, name, price, category, stock)
        skus[key], skus[key + "_id"] = sku, product_id
    gone = await command(
        api, headers, f"{PRODUCTS}/{skus['teapot_id']}/discontinue", {"reason": "old"}
    )
    return skus, gone.headers["X-Position"]


async def test_each_filter_narrows_the_list_to_exactly_the_matching_products(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s, token = await seed_catalog(api, auth())

    async def skus(**params: Any) -> list[str]:
        body = await read(query, reader, PRODUCTS, token, sort="sku", **params)
        assert body["total"] == len(body["items"])
        return ids(body, "sku")

    def of(*keys: str) -> list[str]:
        return sorted(s[key] for key in keys)

    assert await skus() == of("kettle", "cup", "teapot", "hose", "can")
    assert await skus(category=s["kitchen"]) == of("kettle", "cup", "teapot")
    assert await skus(category=s["garden"]) == of("hose", "can")
    assert await skus(category=s["garden"].upper()) == []  # exact match, not a pattern
    assert await skus(category="kitchen") == []
    assert await skus(status="discontinued") == of("teapot")
    assert await skus(status="active") == of("kettle", "cup", "hose", "can")
    # Price bounds are inclusive and compare as money, not as strings ("9.99" > "10.00").
    assert await skus(min_price="10.00") == of("kettle", "teapot", "hose")
    assert await skus(max_price="10") == of("cup", "hose", "can")
    assert await skus(min_price="9.99", max_price="10.00") == of("hose", "can")
    assert await skus(min_price="10.01", max_price="14.99") == []
    # q: case-insensitive text anywhere in the name.
    assert await skus(q="KETTLE") == of("kettle")
    assert await skus(q="tea") == of("cup", "teapot")
    assert await skus(q="pot") == of("teapot")
    assert await skus(q="mug") == []
    # in_stock: available > 0, or not.
    assert await skus(in_stock="true") == of("kettle", "teapot", "can")
    assert await skus(in_stock="false") == of("cup", "hose")
    combined = {"category": s["kitchen"], "status": "active", "in_stock": "true"}
    assert await skus(**combined) == of("kettle")

    [teapot] = (await read(query, reader, PRODUCTS, token, status="discontinued"))["items"]
    assert (teapot["status"], teapot["price"], teapot["available"]) == ("discontinued", "15.00", 2)


async def test_regex_metacharacters_in_q_are_literal_text(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s, token = await seed_catalog(api, auth())
    cases = {
        ".*": [],
        ".": [s["can"]],  # only "Watering can No. 5" holds a dot
        "(": [s["cup"]],
        "(large)": [s["cup"]],
        ")": [s["cup"]],
        "[": [],
        "^Tea": [],
        "Kettle$": [],
        "a|e": [],
        "\\": [],
        "e+": [],
        "?": [],
        "{1}": [],
        '{"$ne": null}': [],
        "$where": [],
    }
    for text, expected in cases.items():
        body = await read(query, reader, PRODUCTS, token, q=text, sort="sku")
        assert (ids(body, "sku"), body["total"]) == (expected, len(expected)), text


async def test_operator_shaped_values_and_keys_are_never_evaluated(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s, token = await seed_catalog(api, auth())
    for value in ('{"$ne": null}', '{"$gt": ""}', "$where", "this.price > 0", "[$ne]"):
        body = await read(query, reader, PRODUCTS, token, category=value)
        assert (body["items"], body["total"]) == ([], 0), value
    kitchen = sorted([s["kettle"], s["cup"], s["teapot"]])
    # Bracket keys are not filters: a real filter next to them still decides alone.
    for params in (
        {"category": s["kitchen"], "category[$ne]": s["kitchen"]},
        {"category": s["kitchen"], "category[$in][]": s["garden"]},
        {"category": s["kitchen"], "$where": "1 == 1", "filter": '{"category": {"$ne": 1}}'},
    ):
        response = await query.get(PRODUCTS, params=params | {"sort": "sku"}, headers=reader)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            assert ids(response.json(), "sku") == kitchen, params
    # Alone, an operator key cannot select anything: either refused, or simply ignored.
    for params in ({"category[$eq]": s["garden"]}, {"price_cents[$gt]": "2000"}):
        response = await query.get(PRODUCTS, params=params, headers=reader)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            assert response.json()["total"] == 5, params
    for params in (
        {"status": '{"$ne": null}'},
        {"status": "retired"},
        {"min_price": '{"$gt": ""}'},
        {"max_price": "abc"},
        {"min_price": "-1"},
        {"min_price": "1.005"},
        {"in_stock": '{"$ne": null}'},
        {"in_stock": "maybe"},
        {"sort": '{"price": 1}'},
        {"sort": "price_cents"},
        {"sort": "$natural"},
        {"q": "x" * 101},
        {"category": "c" * 101},
    ):
        response = await query.get(PRODUCTS, params=params, headers=reader)
        assert response.status_code == 422, (params, response.text)
        assert "detail" in response.json()


SORT_SEED = {
    # key: (name, price, stock)
    "A": ("Kettle", "20.00", 7),
    "B": ("Cup", "5.00", 0),
    "C": ("Kettle", "5.00", 9),
    "D": ("Bowl", "12.50", 7),
}
EXPECTED_ORDER = {
    "sku": "ABCD",
    "-sku": "DCBA",
    "name": "DBAC",  # Kettle A and Kettle C tie: by SKU
    "-name": "ACBD",  # ... by SKU ascending in both directions
    "price": "BCDA",  # B and C tie at 5.00
    "-price": "ADBC",
    "available": "BADC",  # A and D tie at 7
    "-available": "CADB",
}


def test_every_sort_key_is_covered() -> None:
    assert set(EXPECTED_ORDER) == set(SORTS)


async def test_every_sort_key_ascending_and_descending_with_tie_breaks(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    t, token = tag(), ""
    category = f"sort-{t}"
    for key, (name, price, stock) in SORT_SEED.items():
        _, token = await register(api, auth(), f"{key}-{t}", name, price, category, stock)
    for sort, expected in EXPECTED_ORDER.items():
        body = await read(query, reader, PRODUCTS, token, category=category, sort=sort)
        assert [sku.split("-")[0] for sku in ids(body, "sku")] == list(expected), sort
    default = await read(query, reader, PRODUCTS, token, category=category)
    assert [sku.split("-")[0] for sku in ids(default, "sku")] == list("ABCD")


async def test_pagination_totals_pages_last_partial_page_and_past_the_end(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    t, token = tag(), ""
    category = f"page-{t}"
    skus = [f"P{i}-{t}" for i in range(5)]
    for sku in skus:
        _, token = await register(api, auth(), sku, f"Item {sku}", "1.00", category)
    _, token = await register(api, auth(), f"OTHER-{t}", "Other", "1.00", f"other-{t}")

    pages = []
    for page in (1, 2, 3, 4):
        body = await read(query, reader, PRODUCTS, token, category=category, page=page, size=2)
        assert (body["total"], body["page"], body["size"]) == (5, page, 2)
        pages.append(ids(body, "sku"))
    assert pages == [skus[0:2], skus[2:4], skus[4:], []]
    whole = await read(query, reader, PRODUCTS, token, category=category, size=200)
    assert (ids(whole, "sku"), whole["total"], whole["size"]) == (skus, 5, 200)
    default = await read(query, reader, PRODUCTS, token)
    assert (default["page"], default["size"], default["total"]) == (1, 50, 6)


@pytest.mark.parametrize(
    "params",
    [
        {"size": 201},
        {"size": 100000},
        {"size": 0},
        {"size": -5},
        {"size": "ten"},
        {"page": 0},
        {"page": -1},
        {"page": "two"},
        {"page": "1.5"},
        {"page": 10**30},
    ],
)
async def test_bad_pagination_is_a_422(
    query: httpx.AsyncClient, reader: dict[str, str], params: dict[str, Any]
) -> None:
    response = await query.get(PRODUCTS, params=params, headers=reader)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


async def test_one_product_by_id_and_by_sku_in_any_case_and_404s(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    t = tag()
    sku = f"MUG-{t}"
    product_id, token = await register(api, auth(), sku, "Blue Mug", "9.50", f"mugs-{t}", 20)
    by_id = await read(query, reader, f"{PRODUCTS}/{product_id}", token)
    assert by_id["id"] == product_id and by_id["sku"] == sku
    assert (by_id["name"], by_id["price"], by_id["category"]) == ("Blue Mug", "9.50", f"mugs-{t}")
    assert (by_id["status"], by_id["on_hand"], by_id["available"]) == ("active", 20, 20)
    for spelling in (sku, sku.lower(), sku.title()):
        assert await read(query, reader, f"{PRODUCTS}/by-sku/{spelling}", token) == by_id

    missing = await read(query, reader, f"{PRODUCTS}/{uuid4()}", expect=404)
    assert "not found" in str(missing["detail"])
    missing = await read(query, reader, f"{PRODUCTS}/by-sku/NOPE-{t}", expect=404)
    assert "not found" in str(missing["detail"])
    for bad in ("not-a-uuid", "1234", f"{product_id}x", "00000000-0000-0000-0000-00000000000g"):
        await read(query, reader, f"{PRODUCTS}/{bad}", expect=422)
    for bad_sku in ("-LEADING-DASH", "a" * 65, "$ne", "MUG%20X", ".hidden"):
        response = await query.get(f"{PRODUCTS}/by-sku/{bad_sku}", headers=reader)
        assert response.status_code in (404, 422), (bad_sku, response.text)
