"""A replay that waits while a rebuild swaps generations writes into the new live one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases, generation_names
from projections.checkpoints import CHECKPOINTS
from tests.ops.helpers import Db, caught_up
from tests.ops.test_repairs import ALL
from tests.readside.test_fulfilment import place, setup_catalog
from workers.bootstrap import read_side_over
from workers.handoff import handoff
from workers.replay import replay_stream
from workers.service import SubscriptionService

Auth = Callable[..., dict[str, str]]


async def takers_waiting(db: Db, name: str, count: int) -> None:
    """Wait until `count` takers have asked the owners of `name` to let go."""
    deadline = time.monotonic() + 10
    while True:
        doc = await db[CHECKPOINTS].find_one({"_id": name}) or {}
        if len(doc.get("handoffs") or {}) >= count:
            return
        assert time.monotonic() < deadline, "the replay never asked for the lease"
        await asyncio.sleep(0.02)


async def test_a_replay_waiting_for_a_swap_writes_into_the_new_generation(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
) -> None:
    await setup_catalog(api, auth(), {"GEN": 5})
    order, _ = [await place(api, auth(), GEN=1) for _ in range(2)]
    await caught_up(pg_store, mongo_db, ALL)
    aliases = Aliases(mongo_db)
    async with handoff(read_side_over(engine, mongo_db), "orders"):  # a rebuild, about to swap
        replay = asyncio.create_task(replay_stream(UUID(order), read_side_over(engine, mongo_db)))
        await takers_waiting(mongo_db, "orders", 2)
        await mongo_db["orders"].delete_one({"_id": order})  # damage the live view
        generation = await aliases.begin("orders")
        new = mongo_db[generation_names("orders", generation)["orders"]]
        await new.insert_many([doc async for doc in mongo_db["orders"].find({})])
        await aliases.swap("orders", generation)
    await asyncio.wait_for(replay, 30)
    repaired = await new.find_one({"_id": order})
    assert repaired is not None and repaired["status"] == "confirmed"
    assert await mongo_db["orders"].find_one({"_id": order}) is None  # the retired generation
