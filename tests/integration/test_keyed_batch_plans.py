"""Keyed batches never scan the idempotency table, even on a plan made when it was small.

A connection keeps a statement's generic plan once it has run it a few times, and the plan is
not made again while the table grows. A batch statement that once joined its keys with the table
was planned on a young table as a hash join over a sequential scan of every record, kept
statement after statement while the table grew. Keys are taken by the primary key's conflict
check now; this holds every later form of the statement to the same.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from eventstore.base import Completion, IdempotencyKey
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.records import AppendResult, NewEvent, StreamAppend
from ops.migrate import upgrade
from tests.conftest import asyncpg_dsn, sqlalchemy_url
from tests.support.servers import in_thread, run_sql, with_database


@pytest.fixture
async def young(pg_admin_url: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A database of its own, its idempotency table analysed with a few hundred records."""
    name = f"ordertrail_test_{uuid.uuid4().hex[:12]}"
    run_sql(pg_admin_url, f'CREATE DATABASE "{name}"')
    url = sqlalchemy_url(with_database(pg_admin_url, name))
    in_thread(lambda: upgrade(url))
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(records(0, 300))
        await conn.execute("ANALYZE idempotency_records")
    finally:
        await conn.close()
    engine = create_async_engine(url, pool_size=4)
    yield url, engine
    await dispose(engine)
    run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def records(first: int, count: int) -> str:
    """An INSERT of `count` finished records."""
    return (
        "INSERT INTO idempotency_records (actor, key, request_hash, status, lock_token, "
        "locked_until, expires_at) SELECT 'old', 'k' || g, 'h', 'done', gen_random_uuid(), "
        f"NULL, now() + interval '1 day' FROM generate_series({first}, {first + count - 1}) g"
    )


def by_token(results: list[AppendResult]) -> dict[str, object]:
    """An answer naming the position by its token."""
    return {"position": results[0].position.token}


async def sequential_scans(dsn: str, inserts: int) -> int:
    """The table's sequential scans, once the statistics show `inserts` inserts."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 30
        while True:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow(
                "SELECT seq_scan, n_tup_ins FROM pg_stat_user_tables "
                "WHERE relname = 'idempotency_records'"
            )
            assert row is not None
            if row["n_tup_ins"] >= inserts or time.monotonic() > deadline:
                assert row["n_tup_ins"] >= inserts, "statistics never caught up"
                return int(row["seq_scan"])
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def keyed_batches(store: PostgresEventStore, rounds: int) -> int:
    """`rounds` times, twelve keyed appends at once (batches beyond the first two); how many."""
    for _ in range(rounds):
        keys = [IdempotencyKey("alice", uuid.uuid4().hex, "h") for _ in range(12)]
        appends = [
            StreamAppend(uuid.uuid4(), "Ticker", 0, [NewEvent("Tick", {}, datetime.now(UTC))])
            for _ in keys
        ]
        await asyncio.gather(
            *(
                store.append(a, completion=Completion(k, by_token))
                for a, k in zip(appends, keys, strict=True)
            )
        )
    return rounds * 12


async def test_keyed_batches_take_keys_by_key(young: tuple[str, AsyncEngine]) -> None:
    url, engine = young
    store, dsn = PostgresEventStore(engine), asyncpg_dsn(url)
    stored = 300 + await keyed_batches(store, 12)  # each connection now holds its generic plans
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(records(300, 30000))  # the table grows past what they were made for
        stored += 30000
    finally:
        await conn.close()
    before = await sequential_scans(dsn, stored)
    stored += await keyed_batches(store, 12)
    assert await sequential_scans(dsn, stored) == before
