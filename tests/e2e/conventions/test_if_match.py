"""DESIGN §6 If-Match: the named version must be the stream's, else 412 and nothing appended."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conventions.helpers import Auth
from tests.e2e.helpers import (
    ORDERS,
    PRODUCTS,
    assert_command_response,
    events_of,
    new_sku,
    place_order,
    receive,
    register,
    stock_url,
    types_of,
)


async def test_if_match_matching_version_succeeds(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}"
    response = await api.post(
        f"{url}/rename", json={"name": "A"}, headers=auth() | {"If-Match": '"1"'}
    )
    assert_command_response(response, 200, 2, product["id"])
    # weak form and the ETag just returned both work
    etag = response.headers["ETag"]
    response = await api.post(
        f"{url}/reprice", json={"price": "2.00"}, headers=auth() | {"If-Match": etag}
    )
    assert_command_response(response, 200, 3, product["id"])
    response = await api.post(
        f"{url}/rename", json={"name": "B"}, headers=auth() | {"If-Match": 'W/"3"'}
    )
    assert_command_response(response, 200, 4, product["id"])
    assert len(await events_of(api, admin, product["id"])) == 4


async def test_if_match_stale_version_is_412_and_appends_nothing(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}"
    assert (await api.post(f"{url}/rename", json={"name": "A"}, headers=auth())).status_code == 200
    for stale in ('"1"', '"3"', '"0"'):
        response = await api.post(
            f"{url}/rename", json={"name": "B"}, headers=auth() | {"If-Match": stale}
        )
        assert response.status_code == 412, (stale, response.text)
        assert "detail" in response.json()
    events = await events_of(api, admin, product["id"])
    assert [e["type"] for e in events] == ["ProductRegistered", "ProductRenamed"]
    assert events[1]["data"] == {"name": "A"}


async def test_if_match_on_stock_and_orders(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    stock = (await receive(api, auth(), sku, 5)).json()  # version 2
    stale = await api.post(
        stock_url(sku, "receive"), json={"quantity": 1}, headers=auth() | {"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    fresh = await api.post(
        stock_url(sku, "adjust"),
        json={"delta": -1, "reason": "x"},
        headers=auth() | {"If-Match": '"2"'},
    )
    assert_command_response(fresh, 200, 3, stock["id"])

    order = (await place_order(api, auth(), (sku, 1))).json()
    stale = await api.post(
        f"{ORDERS}/{order['id']}/cancel",
        json={"reason": "x"},
        headers=auth() | {"If-Match": '"7"'},
    )
    assert stale.status_code == 412
    assert await types_of(api, admin, order["id"]) == ["OrderPlaced"]


@pytest.mark.parametrize("value", ["1", "abc", '"x"', '"1', '"-1"', '"1.0"', '"1", "2"'])
async def test_malformed_if_match_is_422(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str], value: str
) -> None:
    product = await register(api, auth())
    response = await api.post(
        f"{PRODUCTS}/{product['id']}/rename",
        json={"name": "A"},
        headers=auth() | {"If-Match": value},
    )
    assert response.status_code == 422, response.text
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered"]
