"""Replaying an order while a crashed batch waits for redelivery leaves its day exactly right.

Each case drives `sales_daily` in one bad order: a batch is written, the worker dies before its
checkpoint, a replay of the order refolds it up to that (older) checkpoint, then the worker's
recovery redelivers the batch.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.records import StoredEvent
from projections.sales_daily import ORDER_EVENTS, SalesDailyProjection, fold_orders
from tests.projections.conftest import History
from workers.replay import _replay_into

Db = AsyncDatabase[dict[str, Any]]


async def order_events(history: History, cancel: bool) -> list[StoredEvent]:
    """An order of 2 x 4.00, confirmed (and cancelled): its sales events in commit order."""
    await history.product("SAL-1", "4.00")
    await history.receive("SAL-1", 5)
    order = await history.order(("SAL-1", 2))
    await history.reserve(order, "SAL-1", 2)
    await history.confirm(order)
    if cancel:
        await history.cancel(order)
    return [e for e in history.events if e.type in ORDER_EVENTS]


async def day_figures(db: Db) -> tuple[int, str]:
    """(orders, revenue) of the only day."""
    [day] = [doc async for doc in db["sales_daily"].find({})]
    return day["orders"], day["revenue"]


@pytest.mark.parametrize(
    ("cancel", "expected"), [(False, (1, "8.00")), (True, (0, "0.00"))], ids=["confirm", "cancel"]
)
async def test_replay_behind_a_written_batch_keeps_the_day_exact(
    mongo_db: Db, history: History, cancel: bool, expected: tuple[int, str]
) -> None:
    events = await order_events(history, cancel)
    *checkpointed, crashed = events
    sales = SalesDailyProjection(mongo_db)
    for event in checkpointed:
        await sales.apply([event])
    await sales.apply([crashed])  # days and state written; the checkpoint is not
    checkpoint = checkpointed[-1].position
    await _replay_into(sales, history.store, [events[0]], checkpoint)  # type: ignore[arg-type]
    await sales.apply([crashed])  # the recovery redelivers the batch
    assert await day_figures(mongo_db) == expected


async def test_replay_between_the_day_write_and_the_state_write_counts_once(
    mongo_db: Db, history: History
) -> None:
    placed, confirmed = await order_events(history, cancel=False)
    sales = SalesDailyProjection(mongo_db)
    await sales.apply([placed])
    _, effects = fold_orders({}, [placed, confirmed])
    await sales._apply_effects(effects)  # the day counts it; the worker dies before the state
    await _replay_into(sales, history.store, [placed], placed.position)  # type: ignore[arg-type]
    await sales.apply([confirmed])
    assert await day_figures(mongo_db) == (1, "8.00")
