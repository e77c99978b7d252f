"""Alembic: upgrade, downgrade to nothing, upgrade again, on a fresh database."""

from __future__ import annotations

import asyncio

import asyncpg

from ops.migrate import downgrade, upgrade
from tests.conftest import sqlalchemy_url
from tests.support.servers import in_thread


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
