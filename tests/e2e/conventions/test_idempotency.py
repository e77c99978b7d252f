"""DESIGN §6 Idempotency-Key: a repeat replays the first answer; a reuse is 422; in flight 409;
repeats sent at once take effect once; a repeat that would now be refused still replays."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import httpx

from command_api.dispatch import request_hash
from domain.values import product_id
from eventstore.postgres import PostgresEventStore
from tests.e2e.conventions.helpers import Auth, product_body
from tests.e2e.helpers import (
    ORDERS,
    PRODUCTS,
    assert_command_response,
    count_all,
    events_of,
    new_sku,
    receive,
    register,
    stock_url,
    types_of,
)


async def test_idempotent_repeat_replays_and_appends_nothing(
    api: httpx.AsyncClient, auth: Auth, clean_db: None, pg_store: PostgresEventStore
) -> None:
    key = {"Idempotency-Key": f"reg-{uuid4()}"}
    body = product_body()
    first = await api.post(PRODUCTS, json=body, headers=auth() | key)
    created = assert_command_response(first, 201, 1)
    assert "Idempotent-Replayed" not in first.headers
    assert await count_all(pg_store) == 1

    for _ in range(2):
        again = await api.post(PRODUCTS, json=body, headers=auth() | key)
        assert again.status_code == 201, again.text
        assert again.json() == created
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["X-Position"] == first.headers["X-Position"]
    assert await count_all(pg_store) == 1


async def test_idempotent_order_placement_creates_one_order(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    key = {"Idempotency-Key": uuid4().hex}
    body = {"customer_id": str(uuid4()), "lines": [{"sku": sku, "quantity": 2}]}
    first = await api.post(ORDERS, json=body, headers=auth() | key)
    second = await api.post(ORDERS, json=body, headers=auth() | key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, first.json()["id"]) == ["OrderPlaced"]
    assert (await events_of(api, admin, first.json()["id"]))[0]["metadata"][
        "idempotency_key"
    ] == key["Idempotency-Key"]


async def test_idempotent_repeat_of_an_update_returns_the_first_200(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url = f"{PRODUCTS}/{product['id']}/rename"
    key = {"Idempotency-Key": uuid4().hex}
    first = await api.post(url, json={"name": "A"}, headers=auth() | key)
    assert_command_response(first, 200, 2)
    other = await api.post(url, json={"name": "B"}, headers=auth())
    assert other.status_code == 200
    again = await api.post(url, json={"name": "A"}, headers=auth() | key)
    assert again.status_code == 200
    assert again.json() == first.json()  # version 2, not 4
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, product["id"]) == [
        "ProductRegistered",
        "ProductRenamed",
        "ProductRenamed",
    ]


async def test_same_key_with_a_different_body_is_422(
    api: httpx.AsyncClient, auth: Auth, clean_db: None, pg_store: PostgresEventStore
) -> None:
    key = {"Idempotency-Key": uuid4().hex}
    sku = new_sku()
    first = await api.post(PRODUCTS, json=product_body(sku), headers=auth() | key)
    assert first.status_code == 201
    other = await api.post(PRODUCTS, json=product_body(sku, name="Different"), headers=auth() | key)
    assert other.status_code == 422, other.text
    assert "detail" in other.json()
    # another route with the key is another request too
    renamed = await api.post(
        f"{PRODUCTS}/{first.json()['id']}/rename", json={"name": "Z"}, headers=auth() | key
    )
    assert renamed.status_code == 422
    assert await count_all(pg_store) == 1


async def test_same_key_with_another_if_match_is_another_request(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    product = await register(api, auth())
    url, body = f"{PRODUCTS}/{product['id']}/rename", {"name": "A"}
    key = {"Idempotency-Key": uuid4().hex}
    first = await api.post(url, json=body, headers=auth() | key | {"If-Match": '"1"'})
    assert_command_response(first, 200, 2)
    other = await api.post(url, json=body, headers=auth() | key | {"If-Match": '"2"'})
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    unconditional = await api.post(url, json=body, headers=auth() | key)
    assert unconditional.status_code == 422, unconditional.text
    # The weak form names the same version: the very same request, replayed.
    again = await api.post(url, json=body, headers=auth() | key | {"If-Match": 'W/"1"'})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered", "ProductRenamed"]


async def test_same_key_in_flight_is_409(
    api: httpx.AsyncClient, auth: Auth, pg_store: PostgresEventStore, admin: dict[str, str]
) -> None:
    sub, key, sku = f"user-{uuid4().hex[:8]}", uuid4().hex, new_sku()
    body = product_body(sku)
    fingerprint = request_hash("POST", PRODUCTS, json.dumps(body).encode())
    await pg_store.claim_idempotency(sub, key, fingerprint)

    response = await api.post(PRODUCTS, json=body, headers=auth(sub=sub) | {"Idempotency-Key": key})
    assert response.status_code == 409, response.text
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []

    # another subject's identical key is not in flight
    response = await api.post(PRODUCTS, json=body, headers=auth() | {"Idempotency-Key": key})
    assert response.status_code == 201


async def test_keys_are_scoped_per_subject(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    key = {"Idempotency-Key": uuid4().hex}
    alice, bob = f"alice-{uuid4().hex[:6]}", f"bob-{uuid4().hex[:6]}"
    alice_body, bob_body = product_body(), product_body()
    first = await api.post(PRODUCTS, json=alice_body, headers=auth(sub=alice) | key)
    second = await api.post(PRODUCTS, json=bob_body, headers=auth(sub=bob) | key)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert (await events_of(api, admin, second.json()["id"]))[0]["metadata"]["actor"] == bob

    # each subject's repeat replays its own answer
    again = await api.post(PRODUCTS, json=bob_body, headers=auth(sub=bob) | key)
    assert again.json() == second.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    again = await api.post(PRODUCTS, json=alice_body, headers=auth(sub=alice) | key)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_failed_command_does_not_keep_the_key(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    key = {"Idempotency-Key": uuid4().hex}
    body = {"quantity": 3, "reference": "PO-9"}
    missing = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    assert missing.status_code == 404
    again = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    assert again.status_code == 404
    assert "Idempotent-Replayed" not in again.headers

    await register(api, auth(), sku)
    fixed = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    created = assert_command_response(fixed, 201, 2)
    assert "Idempotent-Replayed" not in fixed.headers
    replayed = await api.post(stock_url(sku, "receive"), json=body, headers=auth() | key)
    assert replayed.status_code == 201
    assert replayed.json() == created
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert await types_of(api, admin, created["id"]) == ["StockItemOpened", "StockReceived"]


async def test_conflicting_command_does_not_keep_the_key(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    assert (await receive(api, auth(), sku, 1)).status_code == 201
    key = {"Idempotency-Key": uuid4().hex}
    body = {"delta": -2, "reason": "count"}
    refused = await api.post(stock_url(sku, "adjust"), json=body, headers=auth() | key)
    assert refused.status_code == 409
    assert (await receive(api, auth(), sku, 1)).status_code == 200  # on hand 2 now
    fixed = await api.post(stock_url(sku, "adjust"), json=body, headers=auth() | key)
    assert fixed.status_code == 200, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


async def test_the_same_key_sent_at_once_places_one_order(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    """Eight copies at once: one takes the key, the others wait for it and replay its answer."""
    sku = new_sku()
    await register(api, auth(), sku)
    key = {"Idempotency-Key": uuid4().hex}
    body = {"customer_id": str(uuid4()), "lines": [{"sku": sku, "quantity": 1}]}
    answers = await asyncio.gather(
        *(api.post(ORDERS, json=body, headers=auth() | key) for _ in range(8))
    )
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert await types_of(api, admin, answers[0].json()["id"]) == ["OrderPlaced"]


async def test_a_repeat_that_would_now_be_refused_replays_the_first_answer(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    await register(api, auth(), sku)
    assert (await receive(api, auth(), sku, 2)).status_code == 201
    key = {"Idempotency-Key": uuid4().hex}
    body = {"delta": -2, "reason": "count"}
    first = await api.post(stock_url(sku, "adjust"), json=body, headers=auth() | key)
    assert_command_response(first, 200, 3)
    again = await api.post(stock_url(sku, "adjust"), json=body, headers=auth() | key)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # Run again, the adjustment would be refused: nothing is left on hand.
    refused = await api.post(stock_url(sku, "adjust"), json=body, headers=auth())
    assert refused.status_code == 409, refused.text
    stream = first.json()["id"]
    assert await types_of(api, admin, stream) == [
        "StockItemOpened",
        "StockReceived",
        "StockAdjusted",
    ]
