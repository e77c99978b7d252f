"""Supervised subscribers: none stops silently, poison is parked, outages park nothing."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.metrics import SUBSCRIBER_FAILURES
from core.settings import Settings
from eventstore.postgres import PostgresEventStore
from eventstore.records import StoredEvent
from ops.status import gather_status
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import build
from tests.readside.test_fulfilment import place, setup_catalog
from tests.readside.test_reliability import insert_event
from tests.readside.test_workers import NAMES, Db, Worker, caught_up, worker_settings
from tests.support.servers import free_port
from workers.bootstrap import read_side_over
from workers.health import HealthServer
from workers.lease import Lease, owners
from workers.purge import PURGE_TASK
from workers.runner import CatchUp

Auth = Callable[..., dict[str, str]]


def failures(subscriber: str, kind: str) -> float:
    """The worker metric's current count."""
    return float(SUBSCRIBER_FAILURES.labels(subscriber, kind)._value.get())


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 15) -> None:
    """Wait until `check()` holds."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def insert_oversized_order(engine: AsyncEngine, store: PostgresEventStore) -> str:
    """A stored OrderPlaced whose total in cents does not fit the 64-bit integers BSON has."""
    placed = next(e for e in await store.read_all(limit=10_000) if e.type == "OrderPlaced")
    data = dict(placed.data)
    data["total"] = "99999999999999999999.00"
    return await insert_event(engine, "Order", "OrderPlaced", data)


async def test_an_order_bson_cannot_store_is_parked_and_later_orders_are_projected(
    api: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    mongodb_url: str,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    engine: AsyncEngine,
    clean_db: None,
) -> None:
    await setup_catalog(api, auth(), {"BIG-1": 100})
    await place(api, auth(), **{"BIG-1": 1})
    poison = await insert_oversized_order(engine, pg_store)
    later = [await place(api, auth(), **{"BIG-1": 1}) for _ in range(3)]
    worker = Worker(worker_settings(settings, mongodb_url, mongo_db, "w-poison"), [])
    try:
        await caught_up(pg_store, mongo_db)
        for order_id in later:
            order = await mongo_db["orders"].find_one({"_id": order_id})
            assert order is not None and order["status"] == "confirmed"
        found = mongo_db["parked_events"].find({"projection": "orders"}).sort("position", 1)
        parked = [doc async for doc in found]
        # The stream's later events (the process confirmed it) cannot fold without it either.
        assert {p["stream_id"] for p in parked} == {poison}
        assert parked[0]["type"] == "OrderPlaced" and "8-byte ints" in parked[0]["error"]
        report = await gather_status(read_side_over(engine, mongo_db))
        assert {name: sub["state"] for name, sub in report["subscribers"].items()} == dict.fromkeys(
            NAMES, "running"
        )
        assert report["subscribers"]["orders"]["parked"] == len(parked)
    finally:
        await worker.shutdown()


async def test_an_unexpected_crash_restarts_the_subscriber_and_shows_within_a_tick(
    api: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    mongodb_url: str,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    engine: AsyncEngine,
    clean_db: None,
) -> None:
    await setup_catalog(api, auth(), {"CRASH-1": 10})
    before = failures("products", "unexpected")
    crashing = worker_settings(settings, mongodb_url, mongo_db, "w-crash").model_copy(
        update={"fault_injection": "crash=1", "subscriber_unhealthy_seconds": 0.5}
    )
    worker = Worker(crashing, [])
    port = free_port()
    health = HealthServer(port, worker.service.health, host="127.0.0.1")
    assert health.start()
    try:

        async def all_failing() -> bool:
            report = await gather_status(read_side_over(engine, mongo_db))
            return all(sub["state"] == "failing" for sub in report["subscribers"].values())

        await eventually(all_failing, "every subscriber to show as failing")
        report = await gather_status(read_side_over(engine, mongo_db))
        products = report["subscribers"]["products"]
        assert "InjectedCrash" in products["failure"]["last_error"]
        assert products["failure"]["worker"] == "w-crash"
        await eventually(lambda: _restarted(worker, "products"), "restarts")
        assert failures("products", "unexpected") >= before + 2
        await asyncio.sleep(0.6)
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/health")
        assert status == 503 and "products" in body["reason"]
    finally:
        await worker.shutdown()
        health.stop()

    # A healthy worker takes over and clears what the failing one left on record.
    healthy = Worker(worker_settings(settings, mongodb_url, mongo_db, "w-fine"), [])
    health = HealthServer(port, healthy.service.health, host="127.0.0.1")
    assert health.start()
    try:
        await caught_up(pg_store, mongo_db)

        async def all_running() -> bool:
            report = await gather_status(read_side_over(engine, mongo_db))
            return all(sub["state"] == "running" for sub in report["subscribers"].values())

        await eventually(all_running, "every subscriber to run again")
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/health")
        assert status == 200 and body["healthy"] is True
        assert set(body["tasks"]) == {*NAMES, "listener", PURGE_TASK}
    finally:
        await healthy.shutdown()
        health.stop()


async def _restarted(worker: Worker, name: str) -> bool:
    supervisor = worker.service.supervisor
    return supervisor is not None and supervisor.tasks[name].restarts >= 2


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_outages_park_nothing_and_are_counted(
    api: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    mongodb_url: str,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    clean_db: None,
) -> None:
    await setup_catalog(api, auth(), {"OUT-1": 50})
    orders = [await place(api, auth(), **{"OUT-1": 1}) for _ in range(10)]
    before = sum(failures(name, "infrastructure") for name in NAMES)
    flaky = worker_settings(settings, mongodb_url, mongo_db, "w-outage").model_copy(
        update={"fault_injection": "seed=3,outage=0.4"}
    )
    worker = Worker(flaky, [])
    try:
        await caught_up(pg_store, mongo_db, seconds=60)
    finally:
        await worker.shutdown()
    assert await mongo_db["parked_events"].count_documents({}) == 0
    assert sum(failures(name, "infrastructure") for name in NAMES) > before
    confirmed = await mongo_db["orders"].count_documents({"_id": {"$in": orders}})
    assert confirmed == len(orders)


class ExplodesOn:
    """Wraps a projection so that applying one given event raises a fresh error type."""

    def __init__(self, inner: Any, bad_id: object, error: Exception) -> None:
        self.inner, self.bad_id, self.error = inner, bad_id, error
        self.name, self.handles = inner.name, inner.handles
        self.calls: list[int] = []
        self.alone = 0  # applies of the bad event on its own

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        self.calls.append(len(events))
        if any(event.event_id == self.bad_id for event in events):
            self.alone += len(events) == 1
            raise self.error
        await self.inner.apply(events)


async def test_a_failing_event_in_a_batch_is_isolated_and_parked_alone(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, pg_store: PostgresEventStore, clean_db: None
) -> None:
    await setup_catalog(api, auth(), {f"ISO-{i}": 1 for i in range(12)})
    events = await pg_store.read_all(limit=1000)
    bad = events[7]
    audit = ExplodesOn(build("audit_log", mongo_db), bad.event_id, LookupError("no such thing"))
    catch_up = CatchUp(
        pg_store, Checkpoints(mongo_db), ParkedEvents(mongo_db), batch_size=100, backoff=0.001
    )
    await catch_up.run(audit)  # type: ignore[arg-type]
    stored = {doc["_id"] async for doc in mongo_db["audit_log"].find({}, {"_id": 1})}
    assert len(stored) == len(events) - 1 and bad.token not in stored
    parked = [d async for d in mongo_db["parked_events"].find({})]
    assert [(p["projection"], p["position"]) for p in parked] == [("audit_log", bad.token)]
    assert "LookupError: no such thing" in parked[0]["error"] and parked[0]["attempts"] == 4
    # Halving finds it in a few applies, not one per event of the batch.
    assert len(audit.calls) < len(events)


async def test_owners_are_found_whatever_the_sign_of_their_lock_key(
    engine: AsyncEngine,
) -> None:
    leases = [Lease(engine, name) for name in NAMES]
    try:
        for lease in leases:
            assert await lease.try_acquire()
        assert sorted(await owners(engine, NAMES)) == sorted(NAMES)
        assert any(lease.key < 0 for lease in leases)  # what used to hide an owner
    finally:
        for lease in leases:
            await lease.release()


async def test_an_event_parked_before_is_not_retried_when_its_batch_is_read_again(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, pg_store: PostgresEventStore, clean_db: None
) -> None:
    await setup_catalog(api, auth(), {f"AGAIN-{i}": 1 for i in range(4)})
    events = await pg_store.read_all(limit=1000)
    audit = ExplodesOn(build("audit_log", mongo_db), events[3].event_id, LookupError("gone"))
    checkpoints = Checkpoints(mongo_db)
    catch_up = CatchUp(pg_store, checkpoints, ParkedEvents(mongo_db), backoff=0.001)
    await catch_up.run(audit)  # type: ignore[arg-type]
    assert audit.alone == 4  # alone, then its three retries
    await checkpoints.reset("audit_log")  # as after a crash before the checkpoint was saved
    audit.alone = 0
    await catch_up.run(audit)  # type: ignore[arg-type]
    assert audit.alone == 1  # found alone again, and known to be parked: no retries
    assert await mongo_db["audit_log"].count_documents({}) == len(events) - 1
    assert await mongo_db["parked_events"].count_documents({}) == 1
