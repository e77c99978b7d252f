"""A rebuild's pass saves its checkpoint now and then, not after each page: still exactly-once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import pytest
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

import workers.rebuild as rebuild_module
from bench.history import history
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import StoredEvent
from projections.aliases import Aliases
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import build
from projections.sales_daily import SalesDailyProjection
from tests.ops.helpers import Db, seed_catalog
from tests.ops.test_rebuild_write_behind import documents
from workers.bootstrap import read_side_over
from workers.rebuild import rebuild
from workers.runner import CatchUp, drain

SALES = ("sales_daily", "sales_daily_skus", "sales_orders")


class Interrupted(BaseException):
    """The process died mid-page, as far as the rebuild can tell (nothing may park it)."""


def saves_of(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """The event counts of each checkpoint save of subscriber `name`, as they happen."""
    saves: list[int] = []
    original = Checkpoints.save

    async def save(self: Checkpoints, subscriber: str, position: Position, events: int) -> None:
        if subscriber == name:
            saves.append(events)
        await original(self, subscriber, position, events)

    monkeypatch.setattr(Checkpoints, "save", save)
    return saves


async def sales_page_by_page(
    store: PostgresEventStore, client: AsyncMongoClient[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """The sales collections as live updates build them, batch by batch, in a scratch database."""
    scratch = client[f"scratch_ck_{uuid4().hex[:8]}"]
    try:
        catch_up = CatchUp(store, Checkpoints(scratch), ParkedEvents(scratch), 250)
        await drain(catch_up, [build("sales_daily", scratch)])
        return {logical: await documents(scratch, logical) for logical in SALES}
    finally:
        await client.drop_database(scratch.name)


@pytest.mark.parametrize(("seconds", "expected"), [(3600.0, [160]), (0.0, [20] * 8)])
async def test_a_pass_saves_its_checkpoint_once_a_while_and_at_the_head(
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    clean_db: None,
    monkeypatch: pytest.MonkeyPatch,
    seconds: float,
    expected: list[int],
) -> None:
    await seed_catalog(pg_store, 40, "ckpt")  # 160 events, 8 pages of 20
    monkeypatch.setattr(rebuild_module, "CHECKPOINT_SECONDS", seconds)
    saves = saves_of(monkeypatch, "audit_log@g1")
    reports: list[tuple[int, int]] = []
    result = await rebuild(
        "audit_log",
        read_side_over(engine, mongo_db),
        progress=lambda done, total: reports.append((done, total)),
        batch_size=20,
    )
    assert saves == expected
    assert reports[0] == (0, 160) and reports[-1] == (160, 160)
    assert result.events == 160
    _, names = await Aliases(mongo_db).live("audit_log")
    assert await mongo_db[names["audit_log"]].count_documents({}) == 160


async def test_a_rebuild_killed_between_checkpoints_resumes_to_the_same_counts(
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    clean_db: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages written after the last save are read and applied again on resuming: the sales
    counters (the writes least forgiving of a repeat) come out as a page-by-page build's."""
    for batch in history(3000):
        await pg_store.append(*batch)
    monkeypatch.setattr(rebuild_module, "CHECKPOINT_SECONDS", 3600.0)
    original, pages = SalesDailyProjection.apply, 0

    async def dies_at_the_sixth_page(
        self: SalesDailyProjection, events: Sequence[StoredEvent]
    ) -> None:
        nonlocal pages
        pages += 1
        if pages == 6:
            raise Interrupted
        await original(self, events)

    monkeypatch.setattr(SalesDailyProjection, "apply", dies_at_the_sixth_page)
    side = read_side_over(engine, mongo_db)
    with pytest.raises(Interrupted):
        await rebuild("sales_daily", side, batch_size=250)
    assert await Checkpoints(mongo_db).load("sales_daily@g1") is None  # nothing saved yet
    assert await mongo_db["sales_daily_skus__g1"].count_documents({}) > 0  # but written

    monkeypatch.setattr(SalesDailyProjection, "apply", original)
    resumed = await rebuild("sales_daily", side, batch_size=250)
    assert resumed.resumed and resumed.generation == 1
    expected = await sales_page_by_page(pg_store, mongo_client)
    for logical in SALES:
        assert await documents(mongo_db, f"{logical}__g1") == expected[logical], logical
