"""Read-your-writes across a rebuild's swap: a claimed position is one the answer includes."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from eventstore.postgres import PostgresEventStore
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import build
from query_api.app import create_app as create_query_app
from tests.ops.helpers import Db, seed_catalog
from tests.query.helpers import PRODUCTS, Auth, command, tag
from tests.support.servers import asgi_client
from workers.bootstrap import read_side_over
from workers.rebuild import rebuild
from workers.runner import CatchUp, drain


async def test_a_read_released_by_the_new_generation_reads_the_new_generation(
    api: httpx.AsyncClient,
    auth: Auth,
    reader: dict[str, str],
    read_settings: Settings,
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    clean_db: None,
) -> None:
    """The rebuild points the alias at generation 1, then moves the checkpoint past the write.

    The live generation never gets the write (no worker runs): only generation 1 holds it. The
    watcher's idle pace is stretched so that a watcher reading aliases at that pace alone could
    never see the swap while it releases the waiting reads.
    """
    await seed_catalog(pg_store, 20)
    await drain(CatchUp(pg_store, Checkpoints(mongo_db), ParkedEvents(mongo_db), 1000), [
        build("products", mongo_db)
    ])  # fmt: skip
    category = tag().lower()
    body = {"sku": f"SWAP-{category}", "name": "new", "price": "1.00", "category": category}
    written = await command(api, auth(), PRODUCTS, body, 201)
    token, product = written.headers["X-Position"], written.json()["id"]
    app = create_query_app(read_settings.model_copy(update={"min_position_wait_seconds": 20}))
    async with asgi_client(app, "http://query-api") as query:
        app.state.watcher.idle = 3600.0
        fresh = reader | {"X-Min-Position": token}
        listed, one, _ = await asyncio.gather(
            query.get(PRODUCTS, params={"category": category}, headers=fresh),
            query.get(f"{PRODUCTS}/{product}", headers=fresh),
            rebuild("products", read_side_over(engine, mongo_db)),
        )
    assert listed.status_code == 200 and listed.headers["X-Read-Position"] >= token
    assert [item["id"] for item in listed.json()["items"]] == [product]
    assert one.status_code == 200, one.text
    assert one.headers["X-Read-Position"] >= token and one.json()["name"] == "new"
