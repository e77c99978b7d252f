"""Order commands over HTTP: place, cancel, ship."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import httpx

from tests.e2e.helpers import (
    ORDERS,
    PRODUCTS,
    assert_command_response,
    events_of,
    new_sku,
    place_order,
    register,
    types_of,
)

Auth = Callable[..., dict[str, str]]


async def test_place_order_captures_catalog_prices_and_total(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    mug, plate = new_sku(), new_sku()
    await register(api, auth(), mug, price="9.50")
    await register(api, auth(), plate, price="3.25")
    customer = str(uuid4())

    response = await api.post(
        ORDERS,
        json={
            "customer_id": customer,
            "lines": [{"sku": mug, "quantity": 2}, {"sku": plate.lower(), "quantity": 3}],
        },
        headers=auth(sub="shopper"),
    )
    body = assert_command_response(response, 201, 1)

    events = await events_of(api, admin, body["id"])
    assert [e["type"] for e in events] == ["OrderPlaced"]
    assert events[0]["stream_type"] == "Order"
    assert events[0]["metadata"]["actor"] == "shopper"
    assert events[0]["position"] == body["position"]
    data = events[0]["data"]
    assert data["customer_id"] == customer
    assert data["lines"] == [
        {"sku": mug, "quantity": 2, "unit_price": "9.50"},
        {"sku": plate, "quantity": 3, "unit_price": "3.25"},
    ]
    assert data["total"] == "28.75"


async def test_each_order_gets_its_own_stream(api: httpx.AsyncClient, auth: Auth) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    first = await place_order(api, auth(), (sku, 1))
    second = await place_order(api, auth(), (sku, 1))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


async def test_reprice_after_ordering_does_not_change_the_order(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    product = await register(api, auth(), sku, price="10.00")
    order = await place_order(api, auth(), (sku, 3))
    assert order.status_code == 201
    repriced = await api.post(
        f"{PRODUCTS}/{product['id']}/reprice", json={"price": "99.99"}, headers=auth()
    )
    assert repriced.status_code == 200

    data = (await events_of(api, admin, order.json()["id"]))[0]["data"]
    assert data["lines"][0]["unit_price"] == "10.00"
    assert data["total"] == "30.00"

    later = await place_order(api, auth(), (sku, 1))
    later_data = (await events_of(api, admin, later.json()["id"]))[0]["data"]
    assert later_data["lines"][0]["unit_price"] == "99.99"
    assert later_data["total"] == "99.99"


async def test_unknown_sku_in_an_order_is_409(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    known = new_sku()
    await register(api, auth(), known)
    response = await place_order(api, auth(), (known, 1), (new_sku(), 1))
    assert response.status_code == 409, response.text
    assert "detail" in response.json()


async def test_discontinued_sku_cannot_be_ordered(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    product = await register(api, auth(), sku)
    gone = await api.post(
        f"{PRODUCTS}/{product['id']}/discontinue", json={"reason": "old"}, headers=auth()
    )
    assert gone.status_code == 200
    response = await place_order(api, auth(), (sku, 1))
    assert response.status_code == 409, response.text
    assert "detail" in response.json()


async def test_cancel_pending_order(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    order = (await place_order(api, auth(), (sku, 1))).json()
    response = await api.post(
        f"{ORDERS}/{order['id']}/cancel",
        json={"reason": "changed my mind"},
        headers=auth(sub="support"),
    )
    body = assert_command_response(response, 200, 2, order["id"])
    events = await events_of(api, admin, order["id"])
    assert [e["type"] for e in events] == ["OrderPlaced", "OrderCancelled"]
    assert events[1]["data"] == {"reason": "changed my mind"}
    assert events[1]["metadata"]["actor"] == "support"
    assert events[1]["position"] == body["position"]


async def test_cancel_a_cancelled_order_is_409(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    order = (await place_order(api, auth(), (sku, 1))).json()
    url = f"{ORDERS}/{order['id']}/cancel"
    assert (await api.post(url, json={"reason": "a"}, headers=auth())).status_code == 200
    again = await api.post(url, json={"reason": "b"}, headers=auth())
    assert again.status_code == 409, again.text
    assert "detail" in again.json()
    assert await types_of(api, admin, order["id"]) == ["OrderPlaced", "OrderCancelled"]


async def test_ship_a_pending_order_is_409(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    order = (await place_order(api, auth(), (sku, 1))).json()
    response = await api.post(f"{ORDERS}/{order['id']}/ship", json={}, headers=auth())
    assert response.status_code == 409, response.text
    assert "detail" in response.json()
    assert await types_of(api, admin, order["id"]) == ["OrderPlaced"]


async def test_ship_a_cancelled_order_is_409(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    order = (await place_order(api, auth(), (sku, 1))).json()
    cancel = await api.post(f"{ORDERS}/{order['id']}/cancel", json={"reason": "x"}, headers=auth())
    assert cancel.status_code == 200
    response = await api.post(f"{ORDERS}/{order['id']}/ship", json={}, headers=auth())
    assert response.status_code == 409
    assert await types_of(api, admin, order["id"]) == ["OrderPlaced", "OrderCancelled"]


async def test_unknown_order_is_404(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    unknown = uuid4()
    cancel = await api.post(f"{ORDERS}/{unknown}/cancel", json={"reason": "x"}, headers=auth())
    ship = await api.post(f"{ORDERS}/{unknown}/ship", json={}, headers=auth())
    assert cancel.status_code == 404, cancel.text
    assert ship.status_code == 404, ship.text
    assert await events_of(api, admin, unknown) == []
