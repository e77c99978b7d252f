"""Plain asyncpg connections beside an engine's SQLAlchemy pool, for the store's hot paths.

SQLAlchemy's async pool checks a connection out and in through greenlets: under the benchmark's
command mix that was about a sixth of a command's CPU time (py-spy). The store's hot paths
(appends, stream and log reads, NOTIFY, idempotency claims, and the transaction of an append
with its stored response) run on a DriverPool instead; the rest keep using the engine. One
DriverPool per engine, connecting on demand, closed by `dispose`.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

# The engine's execution option holding asyncpg.connect() arguments (timeouts, server settings)
# for its DriverPool: core.db.create_engine sets it to the arguments of the engine's own pool.
CONNECT_ARGS_OPTION = "driver_connect_args"

# What asyncpg raises on a connection found lost. InternalClientError is one of them: a session
# the server ended while idle sent its FATAL goodbye first, and a statement started before the
# socket's close was seen finds the protocol still waiting for that error's end ("cannot switch
# to state …; another operation is in progress").
CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

T = TypeVar("T")

# Raised before the statement leaves: an argument asyncpg cannot encode, or a protocol still
# busy with the goodbye of a session that ended while idle (see above).
_NEVER_SENT = (asyncpg.DataError, asyncpg.InternalClientError)


class StatementLost(ConnectionError):
    """The connection was lost with a statement in flight: it may or may not have run.

    A ConnectionError, so whoever treats a lost connection as an outage still does; a writer
    learns from it that its autocommit statement may have committed all the same.
    """


class DriverPool:
    """Up to `size` asyncpg connections, opened on demand and kept while they stay sound.

    Not asyncpg's Pool: its acquire/release cycle (a holder, a shielded task per release, a
    reset) cost ~24 µs of CPU per statement here, more than a `SELECT 1` itself. Statements
    here are single and autocommit, or a transaction that ends (COMMIT or ROLLBACK) before
    its connection goes back, so a connection needs no reset between them. One that
    failed other than by the server refusing the statement (lost, cancelled mid-statement) is
    closed, and the idle ones are dropped with it when the server itself seems gone: after a
    restart only the first statement fails, not one per pooled connection.
    """

    def __init__(self, dsn: str, size: int, timeout: float, connect_args: dict[str, Any]) -> None:
        self._dsn, self._timeout, self._connect_args = dsn, timeout, connect_args
        self._slots = asyncio.Semaphore(size)
        self._idle: collections.deque[asyncpg.Connection] = collections.deque()
        self._closed = False

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement (autocommit) on a pooled connection; its rows."""
        await self._take_slot()
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            rows: list[asyncpg.Record] = await self._settle(conn, conn.fetch(sql, *args))
            self._give_back(conn)
            return rows
        finally:
            self._slots.release()

    async def transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `work` between BEGIN and COMMIT on a pooled connection: all of it, or nothing.

        If `work` raises, the transaction is rolled back and its error raised; a session lost
        before the COMMIT committed nothing (a ConnectionError), one lost at it StatementLost.
        """
        await self._take_slot()
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            result = await self._inside(conn, work)
            await self._settle(conn, conn.execute("COMMIT"))
            self._give_back(conn)
            return result
        finally:
            self._slots.release()

    async def _take_slot(self) -> None:
        if self._slots.locked():  # all connections busy: wait, but no longer than the timeout
            await asyncio.wait_for(self._slots.acquire(), self._timeout)
        else:
            await self._slots.acquire()

    async def _settle(self, conn: asyncpg.Connection, statement: Awaitable[T]) -> T:
        """Await the statement that decides the outcome (an autocommit one, or a COMMIT)."""
        try:
            return await statement
        except asyncpg.PostgresError as exc:
            # The server answered; if it ended the session in doing so (shutdown,
            # termination), asyncpg has marked the connection closed and it is dropped.
            self._give_back(conn)
            if conn.is_closed():  # ended at commit, the statement may have committed
                raise StatementLost(str(exc)) from exc
            raise
        except Exception as exc:
            self._drop(conn, everything=True)
            if isinstance(exc, CONNECTION_LOST) and not isinstance(exc, _NEVER_SENT):
                raise StatementLost(str(exc) or type(exc).__name__) from exc
            raise
        except BaseException:
            self._drop(conn)  # cancelled mid-statement: out of step with the server
            raise

    async def _inside(
        self, conn: asyncpg.Connection, work: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """BEGIN, then `work`; if anything fails, nothing is committed and the error is raised."""
        try:
            await conn.execute("BEGIN")
            return await work(conn)
        except Exception as exc:
            if isinstance(exc, CONNECTION_LOST) or conn.is_closed():
                self._drop(conn, everything=True)
                if isinstance(exc, asyncpg.PostgresError):  # the server ended the session
                    raise ConnectionResetError(str(exc)) from exc
                raise
            await self._roll_back(conn)
            raise
        except BaseException:
            self._drop(conn)  # cancelled: the server rolls back as the session ends
            raise

    async def _roll_back(self, conn: asyncpg.Connection) -> None:
        """ROLLBACK, keeping the connection if that worked (a refusal leaves it sound)."""
        try:
            await conn.execute("ROLLBACK")
        except Exception:  # lost meanwhile: the server rolls back as the session ends
            self._drop(conn, everything=conn.is_closed())
            return
        except BaseException:
            self._drop(conn)
            raise
        self._give_back(conn)

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn, **self._connect_args)
        return conn

    def _give_back(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed() or conn.is_in_transaction():
            self._drop(conn, everything=conn.is_closed())
        else:
            self._idle.append(conn)

    def _drop(self, conn: asyncpg.Connection, everything: bool = False) -> None:
        conn.terminate()
        while everything and self._idle:
            self._idle.pop().terminate()

    async def close(self) -> None:
        """Close the idle connections; busy ones close as their statements end."""
        self._closed = True
        while self._idle:
            await self._idle.pop().close()


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


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the server (readiness)."""
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
