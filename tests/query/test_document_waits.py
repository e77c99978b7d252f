"""One-document reads with X-Min-Position: the wait can end on the document itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from core.settings import Settings
from query_api.app import create_app as create_query_app
from tests.support.servers import asgi_client

Auth = Callable[..., dict[str, str]]
Db = AsyncDatabase[dict[str, Any]]
AHEAD = "e" * 32  # a token no checkpoint reaches in these tests
WAIT_SECONDS = 0.5


@pytest.fixture
async def impatient_query(read_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The query API with a short X-Min-Position wait, and no worker."""
    app = create_query_app(read_settings.model_copy(update={"min_position_wait_seconds": 0.5}))
    async with asgi_client(app, "http://query-api") as client:
        yield client


async def written(
    kind: str, api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: Any
) -> tuple[str, str, str]:
    """Create one document of `kind` through the commands; (route, collection, _id) once read."""
    sku = f"DW-{uuid4().hex[:8].upper()}"
    product = {"sku": sku, "name": "x", "price": "2.00", "category": "dw"}
    reply = await api.post("/api/v1/products", json=product, headers=auth())
    if kind == "products":
        path, key = f"/api/v1/products/{reply.json()['id']}", reply.json()["id"]
    elif kind == "stock":
        reply = await api.post(f"/api/v1/stock/{sku}/receive", json={"quantity": 3}, headers=auth())
        path, key = f"/api/v1/stock/{sku.lower()}", sku
    else:
        lines = [{"sku": sku, "quantity": 1}]
        body = {"customer_id": str(uuid4()), "lines": lines}
        reply = await api.post("/api/v1/orders", json=body, headers=auth())
        path, key = f"/api/v1/orders/{reply.json()['id']}", reply.json()["id"]
    seen = await query.get(path, headers=reader | {"X-Min-Position": reply.headers["X-Position"]})
    assert seen.status_code == 200, seen.text
    return path, kind, key


@pytest.fixture
def ahead(
    api: httpx.AsyncClient, query: httpx.AsyncClient, auth: Auth, reader: Any, mongo_db: Db
) -> Callable[[str], Awaitable[str]]:
    """Make a document of a kind, then give it an event no checkpoint has reached; its path.

    As between a batch's writes and its checkpoint save.
    """

    async def make(kind: str) -> str:
        path, collection, key = await written(kind, api, query, auth, reader)
        await mongo_db[collection].update_one({"_id": key}, {"$set": {"_last": AHEAD}})
        return path

    return make


@pytest.mark.parametrize("kind", ["products", "stock", "orders"])
async def test_a_document_past_the_token_answers_before_the_checkpoint_does(
    kind: str,
    ahead: Callable[[str], Awaitable[str]],
    query: httpx.AsyncClient,
    reader: dict[str, str],
) -> None:
    path = await ahead(kind)  # a read waiting for that event needs nothing more

    started = time.monotonic()
    read = await query.get(path, headers=reader | {"X-Min-Position": AHEAD})

    assert read.status_code == 200, read.text
    assert read.headers["X-Read-Position"] == AHEAD
    assert time.monotonic() - started < 1.5  # the 2 s wait did not run out


async def test_a_document_behind_the_token_still_waits_for_the_checkpoint(
    api: httpx.AsyncClient,
    query: httpx.AsyncClient,
    impatient_query: httpx.AsyncClient,
    auth: Auth,
    reader: dict[str, str],
) -> None:
    path, _, _ = await written("products", api, query, auth, reader)

    read = await impatient_query.get(path, headers=reader | {"X-Min-Position": AHEAD})

    assert read.status_code == 503
    assert read.headers["Retry-After"] == "1"


async def test_no_document_once_the_checkpoint_passes_the_token_is_a_404(
    impatient_query: httpx.AsyncClient, reader: dict[str, str], mongo_db: Db
) -> None:
    checkpoints = mongo_db["checkpoints"]
    await checkpoints.update_one({"_id": "products"}, {"$set": {"token": "1" * 32}}, upsert=True)
    token = "2" * 32

    async def projection_catches_up() -> None:
        await asyncio.sleep(0.1)
        await checkpoints.update_one({"_id": "products"}, {"$set": {"token": token}})

    read, _ = await asyncio.gather(
        impatient_query.get(
            f"/api/v1/products/{uuid4()}", headers=reader | {"X-Min-Position": token}
        ),
        projection_catches_up(),
    )

    assert read.status_code == 404, read.text
    assert read.headers["X-Read-Position"] == token


async def test_without_a_token_a_document_read_reports_its_own_position(
    ahead: Callable[[str], Awaitable[str]], query: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    path = await ahead("products")

    read = await query.get(path, headers=reader)

    assert read.status_code == 200
    assert read.headers["X-Read-Position"] == AHEAD  # newer than any checkpoint
    listed = await query.get("/api/v1/products", headers=reader)
    assert listed.headers["X-Read-Position"] < AHEAD  # a list reports the checkpoint
