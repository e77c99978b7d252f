"""Bare ceilings for the figures: the least an HTTP server can do per write and per read.

`uvicorn bench.ceilings:insert_app` (CEILING_DATABASE_URL, a libpq URL): `POST /insert` runs one
raw asyncpg INSERT of the request's small JSON into `ceiling_events`, the event table's shape.
`uvicorn bench.ceilings:find_app` (CEILING_MONGODB_URL, CEILING_MONGODB_DB,
CEILING_MONGODB_COLLECTION): `GET /find/{id}` runs one `find_one({"_id": id})`, and
`GET /list?category=&min_cents=` the query API's filtered list as bare calls: one
`find(...).sort("sku").limit(20)` and one `count_documents`.
Both are plain FastAPI apps under the same uvicorn as the products they are compared with.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from pymongo import AsyncMongoClient

from bench.tables import events_like

POOL_SIZE = 10

CREATE_TABLE = ";\n".join(events_like("ceiling_events"))

INSERT = (
    "INSERT INTO ceiling_events "
    "(event_id, stream_id, stream_type, version, type, data, metadata, recorded_at) "
    "VALUES ($1, $2, 'Ceiling', 1, 'CeilingRecorded', $3::jsonb, $4::jsonb, $5) RETURNING position"
)


@asynccontextmanager
async def _insert_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the table and a pool of POOL_SIZE connections."""
    url = os.environ["CEILING_DATABASE_URL"]
    pool = await asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep)
    async with pool.acquire() as conn:
        await conn.execute(CREATE_TABLE)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


async def _keep(conn: asyncpg.Connection) -> None:
    """No reset on release: asyncpg's default (UNLISTEN *, RESET ALL, …) is a second statement
    per request, and the ceiling is one INSERT; nothing here changes session state."""


insert_app = FastAPI(title="insert ceiling", lifespan=_insert_lifespan)


@insert_app.post("/insert", status_code=201)
async def insert(request: Request) -> dict[str, Any]:
    """One INSERT of the request's JSON body as a new stream's first event."""
    data = json.dumps(json.loads(await request.body()))  # parsed and re-encoded, like an event
    stream_id = uuid.uuid4()
    meta = json.dumps({"actor": "bench", "request_id": str(stream_id)})
    # recorded_at comes from the writer, as an event's does: `events` has no default for it.
    args = (uuid.uuid4(), stream_id, data, meta, datetime.now(UTC))
    position = await request.app.state.pool.fetchval(INSERT, *args)
    return {"id": str(stream_id), "version": 1, "position": str(position)}


@asynccontextmanager
async def _find_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One AsyncMongoClient on the read models' server."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["CEILING_MONGODB_URL"], tz_aware=True
    )
    database = client[os.environ["CEILING_MONGODB_DB"]]
    app.state.collection = database[os.environ.get("CEILING_MONGODB_COLLECTION", "products")]
    try:
        yield
    finally:
        await client.close()


find_app = FastAPI(title="find ceiling", lifespan=_find_lifespan)


@find_app.get("/find/{doc_id}")
async def find(doc_id: str, request: Request) -> dict[str, Any]:
    """One find_one by _id."""
    doc: dict[str, Any] | None = await request.app.state.collection.find_one({"_id": doc_id})
    if doc is None:
        raise HTTPException(404, detail=f"{doc_id} not found")
    return doc


@find_app.get("/list")
async def find_list(category: str, min_cents: int, request: Request) -> dict[str, Any]:
    """The same find + count_documents as the query API's filtered list, without the rest."""
    collection = request.app.state.collection
    query = {"category": category, "price_cents": {"$gte": min_cents}}
    items = [doc async for doc in collection.find(query).sort([("sku", 1)]).limit(20)]
    return {"items": items, "total": await collection.count_documents(query)}


@insert_app.get("/health")
@find_app.get("/health")
async def health() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}
