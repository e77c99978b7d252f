"""GET /api/v1/audit: by stream, actor (the token's sub), type and time; newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx

from tests.query.helpers import AUDIT, PRODUCTS, STOCK, Auth, Json, command, read, tag


@dataclass
class Seed:
    """A product registered, renamed and repriced by a clerk; its stock received by a stocker."""

    clerk: str
    stocker: str
    product_id: str
    stock_id: str
    token: str
    entries: list[Json]  # the whole log, newest first


async def seed_audit(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> Seed:
    t = tag()
    clerk, stocker, sku = f"clerk-{t}", f"stocker-{t}", f"AUD-{t}"
    body = {"sku": sku, "name": "Lamp", "price": "30.00", "category": f"audit-{t}"}
    product_id = (await command(api, auth(sub=clerk), PRODUCTS, body, 201)).json()["id"]
    received = await command(api, auth(sub=stocker), f"{STOCK}/{sku}/receive", {"quantity": 4})
    stock_id = received.json()["id"]
    await command(api, auth(sub=clerk), f"{PRODUCTS}/{product_id}/rename", {"name": "Desk lamp"})
    last = await command(api, auth(sub=clerk), f"{PRODUCTS}/{product_id}/reprice", {"price": "35"})
    token = last.headers["X-Position"]
    everything = await read(query, reader, AUDIT, token, size=200)
    assert everything["total"] == len(everything["items"])
    return Seed(clerk, stocker, product_id, stock_id, token, everything["items"])


def types(body: Json) -> list[str]:
    return [entry["type"] for entry in body["items"]]


async def test_the_log_is_newest_first_with_who_did_what(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_audit(api, query, auth, reader)
    entries = s.entries
    positions = [entry["position"] for entry in entries]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
    assert entries[0]["position"] == s.token
    kinds = [entry["type"] for entry in entries]
    assert kinds[:2] == ["ProductRepriced", "ProductRenamed"]
    assert kinds[-1] == "ProductRegistered" and "StockReceived" in kinds
    registered = entries[-1]
    assert (registered["stream_id"], registered["actor"]) == (s.product_id, s.clerk)
    assert registered["data"]["sku"].startswith("AUD-") and registered["version"] == 1
    assert registered["correlation_id"] and "recorded_at" in registered
    assert entries[0]["data"]["price"] in ("35.00", "35")
    recorded = [entry["recorded_at"] for entry in entries]
    assert recorded == sorted(recorded, reverse=True)


async def test_audit_filters_by_stream_actor_and_type(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_audit(api, query, auth, reader)

    async def listed(**params: Any) -> Json:
        body = await read(query, reader, AUDIT, s.token, **params)
        assert body["total"] == len(body["items"])
        return body

    product = ["ProductRepriced", "ProductRenamed", "ProductRegistered"]
    stock = [e["type"] for e in s.entries if e["stream_id"] == s.stock_id]
    assert stock and "StockReceived" in stock
    assert len(s.entries) == len(product) + len(stock)
    assert types(await listed(stream_id=s.product_id)) == product
    assert types(await listed(stream_id=s.stock_id)) == stock
    assert types(await listed(stream_id=str(uuid4()))) == []
    assert types(await listed(actor=s.clerk)) == product
    assert types(await listed(actor=s.stocker)) == stock
    assert types(await listed(actor="dashboard")) == []  # the reader's own sub: reads not logged
    assert types(await listed(actor=s.clerk.upper())) == []
    renamed = await listed(type="ProductRenamed")
    assert types(renamed) == ["ProductRenamed"]
    assert renamed["items"][0]["data"]["name"] == "Desk lamp"
    assert types(await listed(type="StockReceived", actor=s.stocker)) == ["StockReceived"]
    assert types(await listed(type="StockReceived", actor=s.clerk)) == []
    assert types(await listed(type="OrderPlaced")) == []
    for value in ('{"$ne": null}', '{"$gt": ""}', "$where", ".*"):
        assert (await listed(actor=value))["total"] == 0, value
        assert (await listed(type=value))["total"] == 0, value


async def test_audit_time_range_is_inclusive(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_audit(api, query, auth, reader)
    [renamed] = [e for e in s.entries if e["type"] == "ProductRenamed"]
    at = renamed["recorded_at"]
    since = await read(query, reader, AUDIT, s.token, since=at)
    assert types(since) == ["ProductRepriced", "ProductRenamed"]
    until = await read(query, reader, AUDIT, s.token, until=at)
    assert types(until) == [e["type"] for e in s.entries[1:]]
    both = await read(query, reader, AUDIT, s.token, since=at, until=at)
    assert types(both) == ["ProductRenamed"]
    first, last = s.entries[-1]["recorded_at"], s.entries[0]["recorded_at"]
    assert (await read(query, reader, AUDIT, s.token, since=first, until=last))["total"] == len(
        s.entries
    )
    assert (await read(query, reader, AUDIT, s.token, since=last, until=first))["total"] == 0
    assert (await read(query, reader, AUDIT, s.token, until="2000-01-01T00:00:00Z"))["total"] == 0


async def test_audit_pagination(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: dict[str, str]
) -> None:
    s = await seed_audit(api, query, auth, reader)
    n = len(s.entries)
    assert n >= 5
    positions = [e["position"] for e in s.entries]
    seen = []
    for page in range(1, (n + 1) // 2 + 2):
        body = await read(query, reader, AUDIT, s.token, page=page, size=2)
        assert (body["total"], body["page"], body["size"]) == (n, page, 2)
        seen.append([e["position"] for e in body["items"]])
    assert seen[1] == positions[2:4]
    assert seen[-2] == positions[2 * (len(seen) - 2) :] and seen[-1] == []
    assert [position for page in seen for position in page] == positions


async def test_bad_audit_queries_are_422(query: httpx.AsyncClient, reader: dict[str, str]) -> None:
    for params in (
        {"stream_id": "not-a-uuid"},
        {"stream_id": '{"$ne": null}'},
        {"since": "yesterday"},
        {"until": "2024-13-01T00:00:00Z"},
        {"since": '{"$gt": ""}'},
        {"actor": "a" * 201},
        {"type": "T" * 101},
        {"size": 201},
        {"size": 0},
        {"page": -1},
        {"page": "x"},
    ):
        response = await query.get(AUDIT, params=params, headers=reader)
        assert response.status_code == 422, (params, response.text)
        assert "detail" in response.json()
