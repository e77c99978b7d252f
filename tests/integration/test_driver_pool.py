"""The store's own connections: reused while sound, replaced when lost, bounded when busy."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore.driver import CONNECTION_LOST, DriverPool
from eventstore.postgres import translate_errors
from eventstore.records import StoreUnavailable
from tests.conftest import asyncpg_dsn

BACKENDS = "SELECT pg_backend_pid() AS pid"


@pytest.fixture
def name() -> str:
    """The application_name of this test's sessions (an earlier test's may still be ending)."""
    return f"driver-pool-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def pool(database_url: str, name: str) -> AsyncIterator[DriverPool]:
    """A DriverPool of two connections, tagged so the tests can find its server sessions."""
    args = {"server_settings": {"application_name": name}}
    pool = DriverPool(asyncpg_dsn(database_url), 2, 0.5, args)
    yield pool
    await pool.close()


async def pid(pool: DriverPool) -> int:
    """The server process behind the connection a statement ran on."""
    rows = await pool.fetch(BACKENDS)
    return int(rows[0]["pid"])


async def test_a_connection_is_reused_and_survives_a_refused_statement(pool: DriverPool) -> None:
    first = await pid(pool)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await pool.fetch("SELECT 1 / 0")
    assert await pid(pool) == first  # the server refused the statement; the session is fine


async def test_after_the_server_drops_its_sessions_only_one_statement_fails(
    pool: DriverPool, database_url: str, name: str
) -> None:
    busy = [asyncio.create_task(pool.fetch("SELECT pg_sleep(0.2)")) for _ in range(2)]
    await asyncio.gather(*busy)  # two connections are open and idle now
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            name,
        )
    finally:
        await admin.close()
    assert ended == 2
    with pytest.raises((asyncpg.PostgresError, *CONNECTION_LOST)):
        await pool.fetch("SELECT 1")
    # The other idle connection was dropped with the first: the next statement reconnects.
    assert [r[0] for r in await pool.fetch("SELECT 1")] == [1]


async def test_a_session_ended_under_a_statement_is_a_store_outage_not_a_refusal(
    pool: DriverPool, database_url: str, name: str
) -> None:
    busy = [asyncio.create_task(pid(pool)) for _ in range(2)]
    before = set(await asyncio.gather(*busy))  # two sessions, both idle now
    sleeper = asyncio.create_task(pool.fetch("SELECT pg_sleep(5)"))
    await asyncio.sleep(0.2)
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1"
        await admin.fetch(query + " AND state = 'active'", name)
    finally:
        await admin.close()
    with pytest.raises(StoreUnavailable):  # a 503 for a client, not a 500
        async with translate_errors():
            await sleeper
    # The pool let go of that session and of the idle one: both are new now.
    assert not {await pid(pool), await pid(pool)} & before


async def test_a_statement_cancelled_midway_leaves_no_connection_out_of_step(
    pool: DriverPool,
) -> None:
    sleeper = asyncio.create_task(pool.fetch("SELECT pg_sleep(5)"))
    await asyncio.sleep(0.2)
    sleeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sleeper
    for _ in range(4):  # every connection the pool hands out afterwards answers at once
        assert [r[0] for r in await asyncio.wait_for(pool.fetch("SELECT 1"), 2)] == [1]


async def test_a_full_pool_makes_the_next_statement_wait_no_longer_than_its_timeout(
    pool: DriverPool,
) -> None:
    busy = [asyncio.create_task(pool.fetch("SELECT pg_sleep(1.5)")) for _ in range(2)]
    await asyncio.sleep(0.1)
    with pytest.raises(TimeoutError):
        await pool.fetch("SELECT 1")
    await asyncio.gather(*busy)
    assert [r[0] for r in await pool.fetch("SELECT 1")] == [1]  # and the slot came back
