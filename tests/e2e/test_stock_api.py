"""Inventory commands over HTTP: receive and adjust."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.e2e.helpers import (
    assert_command_response,
    events_of,
    new_sku,
    receive,
    register,
    stock_url,
    types_of,
)

Auth = Callable[..., dict[str, str]]


async def stock_stream_id(api: httpx.AsyncClient, auth: Auth, sku: str) -> str:
    """Receive once and return the stock stream's id."""
    response = await receive(api, auth(), sku, 1)
    assert response.status_code in (200, 201), response.text
    stream_id: str = response.json()["id"]
    return stream_id


async def test_first_receipt_opens_the_stock_item_201_then_200(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    product = await register(api, auth(), sku)
    first = await api.post(
        stock_url(sku, "receive"),
        json={"quantity": 20, "reference": "PO-1"},
        headers=auth(sub="warehouse"),
    )
    body = assert_command_response(first, 201, 2)
    assert body["id"] != product["id"]  # its own stream

    second = await api.post(stock_url(sku, "receive"), json={"quantity": 5}, headers=auth())
    second_body = assert_command_response(second, 200, 3, body["id"])

    events = await events_of(api, admin, body["id"])
    assert [e["type"] for e in events] == ["StockItemOpened", "StockReceived", "StockReceived"]
    assert {e["stream_type"] for e in events} == {"StockItem"}
    assert events[0]["data"] == {"sku": sku}
    assert events[1]["data"] == {"sku": sku, "quantity": 20, "reference": "PO-1"}
    assert events[2]["data"] == {"sku": sku, "quantity": 5, "reference": ""}
    assert events[0]["metadata"]["actor"] == "warehouse"
    assert events[1]["metadata"]["actor"] == "warehouse"
    assert events[1]["position"] == body["position"]
    assert events[2]["position"] == second_body["position"]


async def test_receive_with_lower_case_sku_uses_the_same_stream(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    upper = await receive(api, auth(), sku, 2)
    lower = await receive(api, auth(), sku.lower(), 3)
    assert upper.status_code == 201
    assert_command_response(lower, 200, 3, upper.json()["id"])
    events = await events_of(api, admin, upper.json()["id"])
    assert events[0]["data"] == {"sku": sku}


async def test_receive_for_unregistered_sku_is_404(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    response = await receive(api, auth(), sku, 5)
    assert response.status_code == 404, response.text
    assert "detail" in response.json()
    # nothing was opened: registering then receiving still creates the stream (201)
    await register(api, auth(), sku)
    created = await receive(api, auth(), sku, 5)
    assert_command_response(created, 201, 2)
    assert await types_of(api, admin, created.json()["id"]) == [
        "StockItemOpened",
        "StockReceived",
    ]


async def test_adjust(api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    stream_id = await stock_stream_id(api, auth, sku)
    await receive(api, auth(), sku, 9)  # on hand 10

    down = await api.post(
        stock_url(sku, "adjust"),
        json={"delta": -4, "reason": "broken"},
        headers=auth(sub="counter"),
    )
    assert_command_response(down, 200, 4, stream_id)
    up = await api.post(
        stock_url(sku, "adjust"), json={"delta": 2, "reason": "found"}, headers=auth()
    )
    assert_command_response(up, 200, 5, stream_id)

    events = await events_of(api, admin, stream_id)
    assert [e["type"] for e in events][-2:] == ["StockAdjusted", "StockAdjusted"]
    assert events[3]["data"] == {"sku": sku, "delta": -4, "reason": "broken"}
    assert events[3]["metadata"]["actor"] == "counter"
    assert events[4]["data"] == {"sku": sku, "delta": 2, "reason": "found"}


async def test_adjust_to_exactly_zero_is_allowed_below_zero_is_409(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    stream_id = await stock_stream_id(api, auth, sku)
    await receive(api, auth(), sku, 4)  # on hand 5

    below = await api.post(
        stock_url(sku, "adjust"), json={"delta": -6, "reason": "count"}, headers=auth()
    )
    assert below.status_code == 409, below.text
    assert "detail" in below.json()
    assert len(await events_of(api, admin, stream_id)) == 3

    to_zero = await api.post(
        stock_url(sku, "adjust"), json={"delta": -5, "reason": "count"}, headers=auth()
    )
    assert_command_response(to_zero, 200, 4, stream_id)
    again = await api.post(
        stock_url(sku, "adjust"), json={"delta": -1, "reason": "count"}, headers=auth()
    )
    assert again.status_code == 409
    assert len(await events_of(api, admin, stream_id)) == 4


async def test_adjust_unknown_stock_is_404(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    unregistered = new_sku()
    response = await api.post(
        stock_url(unregistered, "adjust"), json={"delta": 1, "reason": "x"}, headers=auth()
    )
    assert response.status_code == 404, response.text

    # registered but never received: no stock record yet
    sku = new_sku()
    await register(api, auth(), sku)
    response = await api.post(
        stock_url(sku, "adjust"), json={"delta": 1, "reason": "x"}, headers=auth()
    )
    assert response.status_code == 404, response.text
    first = await receive(api, auth(), sku, 1)
    assert first.status_code == 201  # the failed adjust opened nothing
