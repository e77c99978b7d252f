"""Alembic: upgrade, downgrade to nothing, upgrade again, on a fresh database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from ops.migrate import downgrade, upgrade
from tests.conftest import sqlalchemy_url
from tests.support.servers import in_thread, run_sql, with_database


@pytest.fixture
def scratch_database(pg_admin_url: str) -> Iterator[str]:
    """An empty database, dropped afterwards."""
    name = f"ordertrail_migrate_{uuid.uuid4().hex[:10]}"
    run_sql(pg_admin_url, f'CREATE DATABASE "{name}"')
    yield with_database(pg_admin_url, name)
    run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tables(dsn: str) -> set[str]:
    """The public tables of a database."""

    async def go() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row["tablename"] for row in rows}
        finally:
            await conn.close()

    return in_thread(lambda: asyncio.run(go()))


def test_upgrade_downgrade_upgrade(scratch_database: str) -> None:
    url = sqlalchemy_url(scratch_database)
    upgrade(url)
    assert {"events", "idempotency_records", "alembic_version"} <= tables(scratch_database)
    downgrade(url, "base")
    assert tables(scratch_database) == {"alembic_version"}
    upgrade(url)
    assert {"events", "idempotency_records"} <= tables(scratch_database)
