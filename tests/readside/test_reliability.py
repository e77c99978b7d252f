"""Crashes between write and checkpoint, poison events, and two workers racing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from projections import sales_daily
from projections.checkpoints import Checkpoints, ParkedEvents, subscriber_status
from projections.registry import COLLECTIONS, PROJECTIONS, build
from tests.readside.test_fulfilment import place, setup_catalog
from workers.runner import CatchUp, drain

Db = AsyncDatabase[dict[str, Any]]
Auth = Callable[..., dict[str, str]]
Settle = Callable[[], Awaitable[int]]


class SimulatedCrash(Exception):
    """The process died here."""

    # Catch-up isolates and parks events behind any other error; a death is no event's fault,
    # so it must leave the batch as an outage does: propagated, re-run from the checkpoint.
    infrastructure = True


class CrashingCheckpoints(Checkpoints):
    """Dies on the n-th checkpoint save: after the batch's writes, before the checkpoint."""

    def __init__(self, db: Db, crash_on: int) -> None:
        super().__init__(db)
        self.saves, self.crash_on = 0, crash_on

    async def save(self, name: str, position: Position, events_seen: int) -> None:
        """Save, unless this is the save we die on."""
        self.saves += 1
        if self.saves == self.crash_on:
            raise SimulatedCrash(name)
        await super().save(name, position, events_seen)


async def read_models(db: Db) -> dict[str, list[dict[str, Any]]]:
    """Every read-model document, by collection."""
    names = [c for name in PROJECTIONS for c in COLLECTIONS[name]]
    return {c: [d async for d in db[c].find({}).sort("_id", 1)] for c in names}


async def from_scratch(store: PostgresEventStore, db: Db) -> dict[str, list[dict[str, Any]]]:
    """The read models projected once, from position zero, into an empty database."""
    catch_up = CatchUp(store, Checkpoints(db), ParkedEvents(db), batch_size=1000)
    await drain(catch_up, [build(name, db) for name in PROJECTIONS])
    return await read_models(db)


async def busy_history(api: httpx.AsyncClient, auth: Auth, settle: Settle) -> None:
    """A history with confirmations, rejections, cancellations and shipments."""
    await setup_catalog(api, auth(), {"NUT": 20, "BOLT": 6})
    orders = [await place(api, auth(), NUT=2, BOLT=1) for _ in range(8)]
    await settle()
    await api.post(f"/api/v1/orders/{orders[0]}/cancel", json={"reason": "x"}, headers=auth())
    await api.post(f"/api/v1/orders/{orders[1]}/ship", json={}, headers=auth())
    await settle()


@pytest.mark.parametrize("crash_on", [1, 2, 5])
async def test_a_crash_between_write_and_checkpoint_changes_nothing(
    crash_on: int,
    api: httpx.AsyncClient,
    auth: Auth,
    settle: Settle,
    pg_store: PostgresEventStore,
    mongo_client: Any,
) -> None:
    await busy_history(api, auth, settle)
    db = mongo_client[f"crash_{uuid4().hex[:10]}"]
    crashing = CatchUp(pg_store, CrashingCheckpoints(db, crash_on), ParkedEvents(db), batch_size=7)
    for name in PROJECTIONS:
        crashing_subscriber = build(name, db)
        with pytest.raises(SimulatedCrash):
            await crashing.run(crashing_subscriber)
        crashing.checkpoints.saves = 0  # type: ignore[attr-defined]
    restarted = CatchUp(pg_store, Checkpoints(db), ParkedEvents(db), batch_size=7)
    await drain(restarted, [build(name, db) for name in PROJECTIONS])
    scratch = mongo_client[f"scratch_{uuid4().hex[:10]}"]
    try:
        expected = await from_scratch(pg_store, scratch)
        assert await read_models(db) == expected
        assert len(expected["audit_log"]) == len(await pg_store.read_all(limit=10_000))
    finally:
        await mongo_client.drop_database(db.name)
        await mongo_client.drop_database(scratch.name)


async def test_a_crash_between_day_counters_and_order_states_counts_once(
    api: httpx.AsyncClient,
    auth: Auth,
    catch_up: CatchUp,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await setup_catalog(api, auth(), {"GEAR": 50})
    settle_all = [build(name, mongo_db) for name in PROJECTIONS if name != "sales_daily"]
    from eventstore.repository import Repository
    from workers.fulfilment import FulfilmentProcess

    for _ in range(5):
        await place(api, auth(), GEAR=3)
    await drain(catch_up, [*settle_all, FulfilmentProcess(Repository(pg_store))])
    real_write, calls = sales_daily.guarded_bulk_write, 0

    async def dies_before_states(collection: Any, ops: Any) -> None:
        nonlocal calls
        calls += 1
        if collection.name.startswith("sales_orders"):
            raise SimulatedCrash("after the day and SKU counters, before the order states")
        await real_write(collection, ops)

    monkeypatch.setattr(sales_daily, "guarded_bulk_write", dies_before_states)
    with pytest.raises(SimulatedCrash):
        await catch_up.run(build("sales_daily", mongo_db))
    monkeypatch.setattr(sales_daily, "guarded_bulk_write", real_write)
    await catch_up.run(build("sales_daily", mongo_db))
    day = await mongo_db["sales_daily"].find_one({})
    assert day is not None and (day["orders"], day["revenue"]) == (5, "30.00")
    [row] = [row async for row in mongo_db["sales_daily_skus"].find({})]
    assert (row["sku"], row["units"], row["revenue_cents"]) == ("GEAR", 15, 3000)


async def insert_event(
    engine: AsyncEngine, stream_type: str, type_: str, data: dict[str, Any]
) -> str:
    """A new stream whose one event is stored as given, past every domain rule; its id."""
    stream_id = str(uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO events (event_id, stream_id, stream_type, version, type, data, "
                "recorded_at) VALUES (:eid, :sid, :stype, 1, :type, CAST(:data AS jsonb), now())"
            ),
            {"eid": uuid4(), "sid": stream_id, "stype": stream_type, "type": type_}
            | {"data": json.dumps(data)},
        )
    return stream_id


async def insert_poison(engine: AsyncEngine) -> str:
    """A ProductRenamed for a product that was never registered: the projector raises on it."""
    return await insert_event(engine, "Product", "ProductRenamed", {"name": "ghost"})


async def test_a_poison_event_is_parked_and_the_others_continue(
    api: httpx.AsyncClient,
    auth: Auth,
    engine: AsyncEngine,
    mongo_db: Db,
    settle: Settle,
) -> None:
    await setup_catalog(api, auth(), {"ONE": 1})
    poison_stream = await insert_poison(engine)
    await setup_catalog(api, auth(), {"TWO": 2})
    await settle()
    parked = [d async for d in mongo_db["parked_events"].find({})]
    assert [(p["projection"], p["stream_id"], p["type"]) for p in parked] == [
        ("products", poison_stream, "ProductRenamed")
    ]
    assert "before ProductRegistered" in parked[0]["error"] and parked[0]["attempts"] == 4
    status = await subscriber_status(mongo_db, ["products", "audit_log"])
    assert (
        status["products"]["parked"] == 1 and "ProductRenamed" in status["products"]["last_error"]
    )
    assert status["audit_log"]["parked"] == 0 and status["audit_log"]["last_error"] is None
    assert status["products"]["token"] == status["audit_log"]["token"]  # products went on
    assert await mongo_db["products"].count_documents({"sku": {"$in": ["ONE", "TWO"]}}) == 2
    assert await mongo_db["audit_log"].count_documents({"stream_id": poison_stream}) == 1
