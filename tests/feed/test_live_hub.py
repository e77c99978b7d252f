"""The live hub on a real MongoDB-wire server: one read per change for all listeners of a topic,
and a listener that lets its queue fill up is cut off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from query_api.deps import ReadModels
from query_api.freshness import CheckpointWatcher
from query_api.live import LiveHub, Topic
from tests.ops.helpers import Db


@pytest.fixture
async def hub(mongo_db: Db) -> AsyncIterator[LiveHub]:
    """A hub following a watcher of this test's read models (queues of 2 changes)."""
    watcher = CheckpointWatcher(mongo_db)
    watcher.start()
    hub = LiveHub(watcher, queue_size=2, min_interval=0)
    hub.start()
    yield hub
    await hub.stop()
    await watcher.stop()


def counting(reads: list[int]) -> Callable[[ReadModels], Any]:
    """A dashboard: how many orders there are; each read is counted in `reads`."""

    async def load(models: ReadModels) -> Any:
        reads.append(1)
        return {"orders": await models["orders"].count_documents({})}

    return load


async def change(db: Db, number: int) -> None:
    """An order lands and the orders projection's checkpoint moves past it."""
    await db["orders"].insert_one({"_id": f"order-{number}"})
    token = f"{number:032x}"
    await db["checkpoints"].update_one({"_id": "orders"}, {"$set": {"token": token}}, upsert=True)


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait (5 s at most) until `check()` holds."""
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_listeners_of_one_topic_share_each_read(hub: LiveHub, mongo_db: Db) -> None:
    reads: list[int] = []
    topic = Topic("orders-count", ("orders",), load=counting(reads))
    listeners = await asyncio.gather(*(hub.subscribe(topic, None) for _ in range(50)))
    assert len(reads) == 1  # all at once: the first subscriber's read serves the other 49
    assert len(hub.states) == 1 and len(hub.states["orders-count"].listeners) == 50
    assert all(listener.queue.get_nowait()[1] == {"orders": 0} for listener in listeners)
    await change(mongo_db, 1)
    await until(lambda: all(not listener.queue.empty() for listener in listeners), "the change")
    assert len(reads) == 2  # one more read for the change, for all fifty
    position, answer = listeners[0].queue.get_nowait()
    assert answer == {"orders": 1} and position == f"{1:032x}"
    late = await hub.subscribe(topic, position)  # resumed at that change: nothing to repeat
    assert late.queue.empty()
    for listener in [*listeners, late]:
        hub.unsubscribe(topic, listener)
    assert hub.states == {} and hub.listeners == 0


async def test_a_listener_that_lets_its_queue_fill_is_cut_off(hub: LiveHub, mongo_db: Db) -> None:
    reads: list[int] = []
    topic = Topic("orders-count", ("orders",), load=counting(reads))
    slow = await hub.subscribe(topic, None)  # takes nothing from now on
    for number in range(1, 4):
        await change(mongo_db, number)
        await until(lambda number=number: len(reads) > number, f"change {number}")  # type: ignore[misc]
    assert slow.cut is not None and slow.cut.startswith("slow consumer: 2 changes")
    assert slow.queue.qsize() == 2  # bounded: what it had, nothing more
