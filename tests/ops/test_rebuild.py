"""Blue/green rebuild under load: readers never see an error or a short list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import build
from tests.ops.helpers import Db, caught_up, seed_catalog
from workers.bootstrap import read_side_over, subscription_service
from workers.handoff import handoff
from workers.rebuild import rebuild
from workers.runner import CatchUp, drain
from workers.service import SubscriptionService

Auth = Callable[..., dict[str, str]]
SKUS = 5000  # 20,000 events


@pytest.fixture
async def products_worker(
    read_settings: Settings, clean_db: None
) -> AsyncIterator[SubscriptionService]:
    """A worker serving only the products projection (the one rebuilt here)."""
    service, stop = (
        subscription_service(read_settings, only=frozenset({"products"})),
        asyncio.Event(),
    )
    task = asyncio.create_task(service.run(stop))
    yield service
    stop.set()
    await asyncio.wait_for(task, 15)


async def keep_writing(api: httpx.AsyncClient, auth: Auth, done: asyncio.Event) -> list[str]:
    """Register products until the rebuild is over; their position tokens."""
    tokens = []
    while not done.is_set():
        body = {"sku": f"LIVE-{len(tokens)}", "name": "live", "price": "2.00", "category": "live"}
        response = await api.post("/api/v1/products", json=body, headers=auth())
        assert response.status_code == 201, response.text
        tokens.append(response.headers["X-Position"])
        await asyncio.sleep(0.02)
    return tokens


async def keep_reading(
    query: httpx.AsyncClient, reader: dict[str, str], done: asyncio.Event
) -> int:
    """Read the catalog until the rebuild is over; every answer must be whole."""
    reads, seen_total = 0, 0
    while not done.is_set():
        bulk = await query.get(
            "/api/v1/products", params={"category": "bulk", "size": 50}, headers=reader
        )
        every = await query.get("/api/v1/products", params={"size": 1}, headers=reader)
        assert bulk.status_code == every.status_code == 200, (bulk.text, every.text)
        assert bulk.json()["total"] == SKUS and len(bulk.json()["items"]) == 50
        assert every.json()["total"] >= seen_total  # never a shorter view than before
        seen_total, reads = every.json()["total"], reads + 1
        await asyncio.sleep(0.05)
    return reads


async def test_rebuild_swaps_in_a_complete_view_while_commands_and_reads_go_on(
    api: httpx.AsyncClient,
    bare_query: httpx.AsyncClient,
    auth: Auth,
    reader: dict[str, str],
    products_worker: SubscriptionService,
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    mongo_client: Any,
) -> None:
    assert await seed_catalog(pg_store, SKUS) >= 20_000
    await caught_up(pg_store, mongo_db, ["products"])
    done = asyncio.Event()
    writing = asyncio.create_task(keep_writing(api, auth, done))
    reading = asyncio.create_task(keep_reading(bare_query, reader, done))
    try:
        result = await rebuild("products", read_side_over(engine, mongo_db), batch_size=2000)
    finally:
        done.set()
    tokens, reads = await writing, await reading
    assert result.generation == 1 and result.events >= 20_000 and reads > 10 and tokens

    last = await bare_query.get(
        "/api/v1/products", params={"category": "live", "size": 200},
        headers=reader | {"X-Min-Position": tokens[-1]},
    )  # fmt: skip
    assert last.json()["total"] == len(tokens)  # writes during the rebuild are in the new view
    assert (await Aliases(mongo_db).live("products"))[0] == 1
    took = await Aliases(mongo_db).rebuild_seconds("products")  # what an outside timer reads
    assert took is not None and 0 < took <= result.seconds
    await caught_up(pg_store, mongo_db, ["products"])
    live = [d async for d in mongo_db["products__g1"].find({}).sort("_id", 1)]
    assert await mongo_db["products"].count_documents({}) == 0  # the old generation is gone
    scratch = mongo_client["scratch_rebuild"]
    try:
        await drain(
            CatchUp(pg_store, Checkpoints(scratch), ParkedEvents(scratch), 2000),
            [build("products", scratch)],
        )
        assert live == [d async for d in scratch["products"].find({}).sort("_id", 1)]
    finally:
        await mongo_client.drop_database("scratch_rebuild")


async def test_a_busy_owner_asked_to_let_go_does_so_at_its_next_check(
    api: httpx.AsyncClient,
    auth: Auth,
    read_settings: Settings,
    clean_db: None,
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
) -> None:
    """Mid-backlog, with new events waking it all the time, the owner lets go within a moment.

    Not once its backlog is drained: a rebuild's swap or a replay would wait for all of it (and
    with steady writes and a long backlog, time out).
    """
    await seed_catalog(pg_store, SKUS, "backlog")
    service, stop = (
        subscription_service(read_settings, only=frozenset({"products"})),
        asyncio.Event(),
    )
    serving = asyncio.create_task(service.run(stop))
    done = asyncio.Event()
    writing = asyncio.create_task(keep_writing(api, auth, done))
    products = mongo_db["products"]
    try:
        for _ in range(1500):  # until the owner is at work on the backlog
            if await products.count_documents({"category": "backlog"}):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the owner never started on the backlog")
        started = time.monotonic()
        async with handoff(read_side_over(engine, mongo_db), "products", wait=30):
            took = time.monotonic() - started
            projected = await products.count_documents({"category": "backlog"})
    finally:
        done.set()
        await writing
        stop.set()
        await asyncio.wait_for(serving, 15)
    assert projected < SKUS, f"let go only after the whole backlog ({took:.1f}s)"
