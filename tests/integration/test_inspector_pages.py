"""The inspector lists streams in pages by key range, holding no transaction between them."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.inspect import PostgresInspector
from eventstore.postgres import PostgresEventStore
from eventstore.records import NewEvent, StreamAppend

IDLE_IN_TRANSACTION = sa.text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
)


def things(count: int, *types: str, stream_type: str = "Thing") -> list[StreamAppend]:
    """`count` new streams, each with events of `types`."""
    now = datetime.now(UTC)
    return [
        StreamAppend(uuid4(), stream_type, 0, [NewEvent(t, {}, now) for t in types])
        for _ in range(count)
    ]


async def test_stream_ids_come_in_key_ordered_pages_up_to_the_bound(
    engine: AsyncEngine, pg_store: PostgresEventStore, clean_db: None
) -> None:
    wanted = things(23, "Made", "Changed") + things(4, "Changed")
    await pg_store.append(*wanted)
    await pg_store.append(*things(5, "Ignored"), *things(3, "Made", stream_type="Other"))
    [upto] = {r.position for r in await pg_store.append(*things(1, "Made"))}
    await pg_store.append(*things(6, "Made"))  # after the bound
    inspector, pages = PostgresInspector(engine), []

    async for page in inspector.stream_ids("Thing", {"Made", "Changed"}, upto, page=5):
        pages.append(page)
        async with engine.connect() as conn:  # between pages, no statement is left open
            assert await conn.scalar(IDLE_IN_TRANSACTION) == 0

    listed = [stream_id for page in pages for stream_id in page]
    expected = {s.stream_id for s in wanted} | await _streams_at(engine, upto.position)
    assert listed == sorted(expected) and len(expected) == 28
    assert [len(page) for page in pages] == [5, 5, 5, 5, 5, 3]


async def _streams_at(engine: AsyncEngine, position: int) -> set[UUID]:
    async with engine.connect() as conn:
        query = sa.text("SELECT stream_id FROM events WHERE position = :p")
        return set((await conn.scalars(query, {"p": position})).all())
