"""The worker's subscribers write without retryable writes; other clients keep them.

A retryable write carries a transaction number, and the server keeps its reply for half an
hour so a retry can be answered from it. Subscriber writes are guarded on their own (`_last`,
unique `_id`, `$max`) and a failed batch is re-run, so they send none: the server keeps no
such record for each of the several writes every event causes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pymongo import monitoring
from pymongo.asynchronous.database import AsyncDatabase

from core.mongo import create_mongo_client
from core.settings import Settings
from workers.bootstrap import subscription_service

Db = AsyncDatabase[dict[str, Any]]
WRITES = {"insert", "update", "delete"}


class Writes(monitoring.CommandListener):
    """Records (command, collection, retryable?) of the writes sent while recording."""

    def __init__(self) -> None:
        self.recording, self.seen = False, list[tuple[str, str, bool]]()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """A command went out."""
        if self.recording and event.command_name in WRITES:
            command = event.command
            collection = str(command.get(event.command_name))
            self.seen.append((event.command_name, collection, "txnNumber" in command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Not needed."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Not needed."""


@pytest.fixture(scope="module")
def writes() -> Iterator[Writes]:
    """A listener on every client created from now on (pymongo's listeners are global)."""
    listener = Writes()
    monitoring.register(listener)
    yield listener
    listener.recording = False


async def test_subscriber_writes_are_not_retryable_and_default_clients_are(
    writes: Writes,
    read_settings: Settings,
    clean_db: None,
    mongo_db: Db,
    api: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
) -> None:
    writes.seen.clear()
    writes.recording = True
    service, stop = subscription_service(read_settings), asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        body = {"sku": "RW-1", "name": "Retry", "price": "1.00", "category": "c"}
        reply = await api.post("/api/v1/products", json=body, headers=auth())
        assert reply.status_code == 201, reply.text
        deadline = time.monotonic() + 20
        while not await mongo_db["products"].find_one({"sku": "RW-1"}):
            assert time.monotonic() < deadline, "the worker did not project the product"
            await asyncio.sleep(0.02)
        # A client made the default way (as ops jobs make theirs) does send retryable writes:
        # the check below would see one if the worker's client were made like it.
        default = create_mongo_client(read_settings, "default-client")
        try:
            await default[mongo_db.name]["scratch"].insert_one({"_id": 1})
        finally:
            await default.close()
    finally:
        writes.recording = False
        stop.set()
        await asyncio.wait_for(task, 15)
    by_collection = {(command, coll): retryable for command, coll, retryable in writes.seen}
    assert ("insert", "products") in by_collection
    assert ("insert", "audit_log") in by_collection
    assert ("update", "checkpoints") in by_collection
    assert by_collection[("insert", "scratch")] is True
    worker_writes = [w for w in writes.seen if w[1] != "scratch"]
    assert worker_writes and not any(retryable for *_, retryable in worker_writes)
