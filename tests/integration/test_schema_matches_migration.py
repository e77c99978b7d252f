"""eventstore/schema.py's metadata is the schema the migrations build, table by table.

The migrations are the definition: they run on a fresh database, the metadata is created beside
them in a schema of its own, and PostgreSQL's catalogue describes both (tests/support/schema.py).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench.tables import events_like
from eventstore.driver import dispose
from eventstore.schema import metadata
from ops.migrate import upgrade
from tests.conftest import sqlalchemy_url
from tests.support.schema import Shapes, TableShape, create_in_schema, differences, shapes


async def migrated_and_declared(
    database: str, declared: sa.MetaData, *after_migrating: str
) -> tuple[Shapes, Shapes]:
    """The migrated tables (then changed by `after_migrating`) and those `declared` creates."""
    url = sqlalchemy_url(database)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in after_migrating:
                await conn.execute(sa.text(statement))
            await create_in_schema(conn, declared, "declared")
            migrated = await shapes(conn, "public")
            assert migrated.pop("alembic_version")  # the migrations' bookkeeping, not a table
            return migrated, await shapes(conn, "declared")
    finally:
        await dispose(engine)


async def test_metadata_matches_the_migrations(scratch_database: str) -> None:
    migrated, declared = await migrated_and_declared(scratch_database, metadata)
    assert set(declared) == set(metadata.tables)  # every table of the metadata was compared
    assert declared["events"].columns and declared["events"].indexes
    assert differences(migrated, declared) == []


async def test_a_difference_either_way_is_reported(scratch_database: str) -> None:
    altered = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(altered)
    altered.tables["events"].append_column(sa.Column("note", sa.Text))
    altered.tables["idempotency_records"].c.expires_at.nullable = True
    migrated, declared = await migrated_and_declared(
        scratch_database,
        altered,
        "ALTER TABLE events ADD COLUMN source text",
        "CREATE INDEX events_recorded_idx ON events (recorded_at)",
    )
    assert differences(migrated, declared) == [
        "events column note: only in the metadata",
        "events column source: only in the migrations",
        "events index events_recorded_idx: only in the migrations",
        "idempotency_records column expires_at: migrations "
        "'timestamp with time zone NOT NULL', metadata 'timestamp with time zone NULL'",
    ]


async def test_bench_ceiling_tables_have_the_migrated_events_shape(scratch_database: str) -> None:
    url = sqlalchemy_url(scratch_database)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in events_like("ceiling_events"):
                await conn.execute(sa.text(statement))
            found = await shapes(conn, "public")
    finally:
        await dispose(engine)
    ceiling = found.pop("ceiling_events")
    # Its names carry its own prefix; once that is read as `events`, nothing may differ.
    as_events = {"events": renamed(ceiling, "ceiling_events", "events")}
    assert differences({"events": found["events"]}, as_events) == []


def renamed(shape: TableShape, old: str, new: str) -> TableShape:
    """`shape` with `old` read as `new` in every name and definition."""

    def swap(items: dict[str, str]) -> dict[str, str]:
        return {k.replace(old, new): v.replace(old, new) for k, v in items.items()}

    return TableShape(swap(shape.columns), swap(shape.constraints), swap(shape.indexes))
