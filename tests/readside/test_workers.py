"""Workers: one owner per subscriber across workers, takeover when the owner stops."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from core.settings import Settings
from eventstore.postgres import PostgresEventStore
from projections.checkpoints import Checkpoints
from tests.readside.test_fulfilment import place, setup_catalog
from workers.bootstrap import subscription_service

Db = AsyncDatabase[dict[str, Any]]
Auth = Callable[..., dict[str, str]]
Batch = tuple[str, str, str, str]  # worker, subscriber, first token, last token
NAMES = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]


def worker_settings(settings: Settings, mongodb_url: str, db: Db, worker: str) -> Settings:
    """Settings of one worker process."""
    return settings.model_copy(
        update={
            "mongodb_url": mongodb_url,
            "mongodb_db": db.name,
            "worker_id": worker,
            "projection_tick_seconds": 0.05,
            "projection_batch_size": 20,
        }
    )


class Worker:
    """A subscription service running as if in its own process (its own pools and leases)."""

    def __init__(self, settings: Settings, batches: list[Batch]) -> None:
        name = settings.worker_id
        record = lambda sub, first, last, n: batches.append((name, sub, first, last))  # noqa: E731
        self.service = subscription_service(settings, on_batch=record)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.service.run(self.stop))

    async def shutdown(self) -> None:
        """Stop and give the leases up."""
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


async def caught_up(store: PostgresEventStore, db: Db, seconds: float = 20) -> None:
    """Wait until every subscriber's checkpoint is at the head of the store."""
    checkpoints, deadline = Checkpoints(db), time.monotonic() + seconds
    while True:
        positions = [await checkpoints.load(name) for name in NAMES]
        behind = [p for p in positions if p is None or await store.read_all(p, limit=1)]
        if not behind and positions:
            return
        assert time.monotonic() < deadline, "workers did not catch up"
        await asyncio.sleep(0.05)


def assert_no_batch_applied_twice(batches: list[Batch]) -> None:
    """Per subscriber, batch ranges never overlap: no two workers applied the same events."""
    for name in NAMES:
        ranges = sorted(
            (first, last, worker) for worker, sub, first, last in batches if sub == name
        )
        for (_, last, _), (first, _, _) in itertools.pairwise(ranges):
            assert last < first, name


async def test_two_workers_share_the_work_without_overlap_and_take_over(
    api: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    mongodb_url: str,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    clean_db: None,
) -> None:
    batches: list[Batch] = []
    first = Worker(worker_settings(settings, mongodb_url, mongo_db, "w1"), batches)
    second = Worker(worker_settings(settings, mongodb_url, mongo_db, "w2"), batches)
    await setup_catalog(api, auth(), {"A1": 100})
    for _ in range(10):
        await place(api, auth(), A1=1)
    await caught_up(pg_store, mongo_db)
    await first.shutdown()
    handed_over = len(batches)
    orders = [await place(api, auth(), A1=2) for _ in range(5)]
    await caught_up(pg_store, mongo_db)
    await second.shutdown()

    assert_no_batch_applied_twice(batches)
    assert {w for w, *_ in batches[handed_over:]} == {"w2"}
    assert {sub for _, sub, *_ in batches[handed_over:]} >= {"products", "fulfilment"}
    confirmed = await mongo_db["orders"].count_documents({"status": "confirmed"})
    assert confirmed == 15 and orders
    product = await mongo_db["products"].find_one({"sku": "A1"})
    assert product is not None and (product["reserved"], product["available"]) == (20, 80)
    events = await pg_store.read_all(limit=10_000)
    assert await mongo_db["audit_log"].count_documents({}) == len(events)


async def test_the_fulfilment_process_s_own_events_wake_the_projections_without_a_tick(
    api: httpx.AsyncClient, auth: Auth, settings: Settings, mongodb_url: str, mongo_db: Db
) -> None:
    slow_tick = worker_settings(settings, mongodb_url, mongo_db, "w-slow-tick")
    worker = Worker(slow_tick.model_copy(update={"projection_tick_seconds": 30.0}), [])
    try:
        await setup_catalog(api, auth(), {"WAKE-1": 5})
        order_id = await place(api, auth(), **{"WAKE-1": 2})
        # Only the order's own append sends NOTIFY from the command API; the reservation and
        # the confirmation are the worker's appends, which must wake its projections too.
        deadline = time.monotonic() + 5
        while True:
            order = await mongo_db["orders"].find_one({"_id": order_id})
            stock = await mongo_db["stock"].find_one({"_id": "WAKE-1"})
            if order and order["status"] == "confirmed" and stock and stock["reserved"] == 2:
                break
            assert time.monotonic() < deadline, (order, stock)
            await asyncio.sleep(0.05)
    finally:
        await worker.shutdown()
