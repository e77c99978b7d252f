"""asyncpg's own pool beside an engine's SQLAlchemy pool, for statements that need no transaction.

SQLAlchemy's async pool checks a connection out and in through greenlets: under the benchmark's
command mix that was about a sixth of a command's CPU time (py-spy). The store's single-statement
hot paths (appends, stream and log reads, NOTIFY) run on a DriverPool instead; transactions keep
using the engine. One DriverPool per engine, opened on first use, closed by `dispose`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

# The engine's execution option holding asyncpg.connect() arguments (timeouts, server settings)
# for its DriverPool: core.db.create_engine sets it to the arguments of the engine's own pool.
CONNECT_ARGS_OPTION = "driver_connect_args"


class DriverPool:
    """A lazily opened asyncpg pool; connects on demand, so an unreachable server surfaces as
    the statement's own error (OSError, TimeoutError), never at start-up."""

    def __init__(self, dsn: str, size: int, timeout: float, connect_args: dict[str, Any]) -> None:
        self._dsn, self._size, self._timeout = dsn, size, timeout
        self._connect_args = connect_args
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._busy = 0  # connections this pool has handed out (it is their only user)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement (autocommit) on a pooled connection; its rows."""
        pool = self._pool or await self._open()
        # asyncpg wraps a timed acquire in a task and a shield (~5 % of a command's CPU); a free
        # or not yet opened connection is handed over at once, so only a full pool needs it.
        self._busy += 1
        try:
            timeout = None if self._busy <= self._size else self._timeout
            async with pool.acquire(timeout=timeout) as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
                return rows
        finally:
            self._busy -= 1

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._size,
                    reset=_end_transaction,
                    **self._connect_args,
                )
        return self._pool

    async def close(self) -> None:
        """Close every connection, letting statements in flight finish."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _end_transaction(conn: asyncpg.Connection) -> None:
    """Statements here change no session state, so asyncpg's default reset on release (a round
    trip: UNLISTEN *, RESET ALL, …) would only cost time; an open transaction still ends."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# Keyed by the engine's pool, which the engines derived with execution_options() share.
_POOLS: weakref.WeakKeyDictionary[Pool, DriverPool] = weakref.WeakKeyDictionary()


def driver_pool(engine: AsyncEngine) -> DriverPool:
    """The engine's DriverPool: as large as the engine's pool, waiting as long for a connection."""
    pool = engine.sync_engine.pool
    if pool not in _POOLS:
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        size, timeout = getattr(pool, "size", lambda: 5)(), getattr(pool, "timeout", lambda: 30)()
        connect_args = engine.get_execution_options().get(CONNECT_ARGS_OPTION, {})
        _POOLS[pool] = DriverPool(dsn, size, timeout, dict(connect_args))
    return _POOLS[pool]


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's DriverPool, then the engine's own pool."""
    pool = _POOLS.pop(engine.sync_engine.pool, None)
    if pool is not None:
        await pool.close()
    await engine.dispose()
