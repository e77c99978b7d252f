"""DESIGN §6 body limit: a request body over 64 KiB is 413, however it is sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx

from domain.values import product_id
from tests.e2e.conventions.helpers import Auth, product_body
from tests.e2e.helpers import PRODUCTS, assert_command_response, events_of, new_sku

LIMIT = 64 * 1024


async def test_body_over_64_kib_with_content_length_is_413(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    text = json.dumps(product_body(sku))
    padded = text[:-1] + " " * (LIMIT + 1 - len(text)) + "}"
    assert len(padded.encode()) == LIMIT + 1
    response = await api.post(
        PRODUCTS, content=padded, headers=auth() | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []


async def test_body_of_exactly_64_kib_is_accepted(api: httpx.AsyncClient, auth: Auth) -> None:
    text = json.dumps(product_body())
    padded = text[:-1] + " " * (LIMIT - len(text)) + "}"
    assert len(padded.encode()) == LIMIT
    response = await api.post(
        PRODUCTS, content=padded, headers=auth() | {"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


def chunked(payload: bytes, size: int = 4096) -> Callable[[], AsyncIterator[bytes]]:
    """A body httpx sends without Content-Length (chunked)."""

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), size):
            yield payload[start : start + size]

    return body


async def test_chunked_body_over_64_kib_is_413(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    text = json.dumps(product_body(sku))
    payload = (text[:-1] + " " * (LIMIT + 10) + "}").encode()
    request = api.build_request(
        "POST",
        PRODUCTS,
        content=chunked(payload)(),
        headers=auth() | {"Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await api.send(request)
    assert response.status_code == 413, response.text
    assert await events_of(api, admin, product_id(sku)) == []


async def test_chunked_body_under_the_limit_is_accepted(api: httpx.AsyncClient, auth: Auth) -> None:
    payload = json.dumps(product_body()).encode()
    request = api.build_request(
        "POST",
        PRODUCTS,
        content=chunked(payload, 7)(),
        headers=auth() | {"Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await api.send(request)
    assert_command_response(response, 201, 1)
