"""An interrupted rebuild resumes from where it stopped; a long transaction shows as lag."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.postgres import PostgresEventStore
from ops.status import gather_status
from projections.aliases import Aliases
from tests.ops.helpers import Db, seed_catalog
from workers.bootstrap import read_side_over
from workers.rebuild import rebuild


class Interrupted(Exception):
    """Ctrl-C, as far as the rebuild can tell."""


def interrupt_after(batches: int):  # type: ignore[no-untyped-def]
    """A progress callback that stops the rebuild after some batches."""
    seen = 0

    def progress(done: int, total: int) -> None:
        nonlocal seen
        if done == 0:
            return  # the report that applying starts, before any batch
        seen += 1
        if seen > batches:
            raise Interrupted(f"stopped at {done} of {total}")

    return progress


async def test_an_interrupted_rebuild_resumes_then_swaps(
    engine: AsyncEngine, pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    await seed_catalog(pg_store, 300, "resume")  # 1,200 events
    with pytest.raises(Interrupted):  # a flush a page (tests/ops/test_rebuild_write_behind.py)
        await rebuild(
            "products",
            read_side_over(engine, mongo_db),
            progress=interrupt_after(2),
            batch_size=200,
            window=100,
            per_document=0,
        )
    aliases = Aliases(mongo_db)
    assert await aliases.pending("products") == 1 and (await aliases.live("products"))[0] == 0
    partial = await mongo_db["products__g1"].count_documents({})
    assert 0 < partial < 300

    resumed = await rebuild(
        "products", read_side_over(engine, mongo_db), batch_size=200, window=100, per_document=0
    )
    assert resumed.resumed and resumed.generation == 1
    assert resumed.events < 1200  # it did not start over
    assert await aliases.pending("products") is None and (await aliases.live("products"))[0] == 1
    assert await mongo_db["products__g1"].count_documents({}) == 300

    again = await rebuild(
        "products", read_side_over(engine, mongo_db), batch_size=500, restart=True
    )
    assert not again.resumed and again.generation == 2 and again.events == 1200


async def test_status_shows_a_long_transaction_holding_readers_back(
    engine: AsyncEngine, pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    async with engine.connect() as long_running:
        await long_running.begin()
        await long_running.execute(sa.text("SELECT pg_current_xact_id()"))
        pid = (await long_running.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        await seed_catalog(pg_store, 5, "held")
        await asyncio.sleep(1.2)  # status lists transactions older than a second
        report = await gather_status(read_side_over(engine, mongo_db))
        assert await pg_store.read_all() == []  # readers wait behind it
        await long_running.rollback()
    assert report["subscribers"]["products"]["lag_events"] == 20  # shown as lag
    assert pid in [h["pid"] for h in report["store"]["held_back_by"]]
    assert len(await pg_store.read_all()) == 20  # and nothing was skipped


async def test_progress_starts_with_nothing_done_and_the_rate_is_over_applying(
    engine: AsyncEngine, pg_store: PostgresEventStore, mongo_db: Db, clean_db: None
) -> None:
    """(0, total) first, so a bar or a job measures its rate from where applying starts, the
    summary's rate is events over the same span, and the whole takes at least as long."""
    await seed_catalog(pg_store, 50, "rate")
    reports: list[tuple[int, int]] = []
    result = await rebuild(
        "products", read_side_over(engine, mongo_db), progress=lambda d, t: reports.append((d, t))
    )
    assert reports[0] == (0, reports[0][1]) and reports[0][1] >= result.events > 0
    assert reports[-1][0] <= result.events
    assert 0 < result.apply_seconds <= result.seconds
    assert result.rate == result.events / result.apply_seconds
