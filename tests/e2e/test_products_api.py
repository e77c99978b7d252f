"""Catalog commands over HTTP: register, rename, reprice, discontinue."""

from __future__ import annotations

from collections.abc import Callable
from uuid import NAMESPACE_URL, uuid4, uuid5

import httpx

from tests.e2e.helpers import (
    PRODUCTS,
    assert_command_response,
    events_of,
    new_sku,
    register,
    types_of,
)

Auth = Callable[..., dict[str, str]]


async def test_register_creates_the_product_stream(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    payload = {
        "sku": sku,
        "name": "Blue mug",
        "description": "350 ml\nstoneware",
        "price": "12.5",
        "category": "kitchen",
    }
    response = await api.post(PRODUCTS, json=payload, headers=auth(sub="cataloguer"))
    body = assert_command_response(response, 201, 1)

    events = await events_of(api, admin, body["id"])
    assert [e["type"] for e in events] == ["ProductRegistered"]
    assert events[0]["stream_type"] == "Product"
    assert events[0]["version"] == 1
    assert events[0]["position"] == body["position"]
    assert events[0]["data"] == {
        "sku": sku,
        "name": "Blue mug",
        "description": "350 ml\nstoneware",
        "price": "12.50",
        "category": "kitchen",
        "unit": "each",
    }
    assert events[0]["metadata"]["actor"] == "cataloguer"


async def test_register_id_is_the_same_for_any_case_of_the_sku(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    body = await register(api, auth(), sku.lower())
    events = await events_of(api, admin, body["id"])
    assert events[0]["data"]["sku"] == sku  # stored upper-cased

    again = await api.post(
        PRODUCTS,
        json={"sku": sku, "name": "Other", "price": "1.00", "category": "x"},
        headers=auth(),
    )
    assert again.status_code == 409, again.text
    assert await types_of(api, admin, body["id"]) == ["ProductRegistered"]


async def test_register_accepts_price_as_a_number(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    payload = {"sku": new_sku(), "name": "Mug", "price": 7.25, "category": "kitchen"}
    response = await api.post(PRODUCTS, json=payload, headers=auth())
    body = assert_command_response(response, 201, 1)
    assert (await events_of(api, admin, body["id"]))[0]["data"]["price"] == "7.25"


async def test_register_duplicate_sku_is_409(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    first = await register(api, auth(), sku, name="First")
    response = await api.post(
        PRODUCTS,
        json={"sku": sku, "name": "Second", "price": "2.00", "category": "x"},
        headers=auth(),
    )
    assert response.status_code == 409
    assert "detail" in response.json()
    events = await events_of(api, admin, first["id"])
    assert len(events) == 1
    assert events[0]["data"]["name"] == "First"


async def test_rename(api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]) -> None:
    product = await register(api, auth())
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/rename", json={"name": "Big mug"}, headers=auth(sub="bob")
    )
    body = assert_command_response(response, 200, 2, product["id"])
    events = await events_of(api, admin, product["id"])
    assert [e["type"] for e in events] == ["ProductRegistered", "ProductRenamed"]
    assert events[1]["data"] == {"name": "Big mug"}
    assert events[1]["metadata"]["actor"] == "bob"
    assert events[1]["position"] == body["position"]
    assert body["position"] != product["position"]


async def test_reprice(api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]) -> None:
    product = await register(api, auth(), price="9.50")
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/reprice", json={"price": "11"}, headers=auth(sub="pricer")
    )
    assert_command_response(response, 200, 2, product["id"])
    events = await events_of(api, admin, product["id"])
    assert [e["type"] for e in events] == ["ProductRegistered", "ProductRepriced"]
    assert events[1]["data"] == {"price": "11.00"}
    assert events[1]["metadata"]["actor"] == "pricer"


async def test_discontinue(api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]) -> None:
    product = await register(api, auth())
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/discontinue",
        json={"reason": "supplier gone"},
        headers=auth(sub="manager"),
    )
    assert_command_response(response, 200, 2, product["id"])
    events = await events_of(api, admin, product["id"])
    assert [e["type"] for e in events] == ["ProductRegistered", "ProductDiscontinued"]
    assert events[1]["data"] == {"reason": "supplier gone"}
    assert events[1]["metadata"]["actor"] == "manager"


async def test_discontinue_without_reason(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    response = await api.post(f"{PRODUCTS}/{product['id']}/discontinue", json={}, headers=auth())
    assert_command_response(response, 200, 2, product["id"])
    assert (await events_of(api, admin, product["id"]))[1]["data"] == {"reason": ""}


async def test_discontinued_product_refuses_every_change(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}"
    done = await api.post(f"{url}/discontinue", json={"reason": "old"}, headers=auth())
    assert done.status_code == 200

    for action, payload in (
        ("rename", {"name": "New"}),
        ("reprice", {"price": "3.00"}),
        ("discontinue", {"reason": "again"}),
    ):
        response = await api.post(f"{url}/{action}", json=payload, headers=auth())
        assert response.status_code == 409, (action, response.text)
        assert "detail" in response.json()

    assert await types_of(api, admin, product["id"]) == [
        "ProductRegistered",
        "ProductDiscontinued",
    ]


async def test_unknown_product_is_404(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    unknown = uuid4()
    for action, payload in (
        ("rename", {"name": "New"}),
        ("reprice", {"price": "3.00"}),
        ("discontinue", {"reason": "x"}),
    ):
        response = await api.post(f"{PRODUCTS}/{unknown}/{action}", json=payload, headers=auth())
        assert response.status_code == 404, (action, response.text)
        assert "detail" in response.json()
    assert await events_of(api, admin, unknown) == []


async def test_stream_events_route_404_for_unknown_stream(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await api.get(
        f"/api/v1/ops/streams/{uuid5(NAMESPACE_URL, 'nope')}/events", headers=admin
    )
    assert response.status_code == 404
