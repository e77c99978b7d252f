"""One owner per subscriber across all workers and machines: a PostgreSQL advisory lock.

The lock lives on a connection the owner holds open. If the owner dies, its connection closes,
PostgreSQL releases the lock, and the next worker that tries takes over.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (the same on every machine)."""
    digest = hashlib.blake2b(f"ordertrail:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Lease:
    """Ownership of one subscriber, held on a dedicated connection."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self.engine, self.name, self.key = engine, name, lock_key(name)
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        """Whether this process believes it owns the subscriber."""
        return self._conn is not None

    async def try_acquire(self) -> bool:
        """Take ownership if nobody has it; never waits."""
        if self._conn is not None:
            return True
        conn = await self.engine.connect()
        try:
            got = await conn.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            await conn.commit()  # end the implicit transaction; the session lock stays
        except BaseException:
            await conn.close()
            raise
        if got:
            self._conn = conn
        else:
            await conn.close()
        return bool(got)

    async def acquire(self, wait: float | None = None, interval: float = 0.05) -> bool:
        """Take ownership, polling until it is free; False if `wait` seconds pass first."""
        deadline = None if wait is None else time.monotonic() + wait
        while not await self.try_acquire():
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(interval)
        return True

    async def confirm(self) -> bool:
        """Check the lock's connection is still alive (else ownership is lost)."""
        if self._conn is None:
            return False
        try:
            await self._conn.execute(sa.text("SELECT 1"))
            await self._conn.commit()
        except Exception as exc:
            log.warning("lease %s lost: %s", self.name, exc)
            await self._drop()
            return False
        return True

    async def release(self) -> None:
        """Give ownership up."""
        if self._conn is None:
            return
        try:
            await self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            await self._conn.commit()
        finally:
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                await conn.invalidate()


_OWNERS = sa.text(
    "SELECT (l.classid::bigint << 32) | l.objid::bigint AS key, a.application_name, a.pid, "
    "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
)


async def owners(engine: AsyncEngine, names: Sequence[str]) -> dict[str, dict[str, object]]:
    """Who holds each subscriber's lease: {name: {worker, pid, since}} (absent: nobody)."""
    # pg_locks splits the key into two unsigned 32-bit halves; the query joins them back into a
    # signed bigint, so compare with the signed key (a negative key never matched unsigned).
    by_key = {lock_key(name): name for name in names}
    async with engine.connect() as conn:
        rows = (await conn.execute(_OWNERS)).all()
    found: dict[str, dict[str, object]] = {}
    for row in rows:
        if (name := by_key.get(int(row.key))) is not None:
            worker = row.application_name.removeprefix("ordertrail-worker ")
            found[name] = {"worker": worker, "pid": row.pid, "since": row.backend_start}
    return found


class PostgresLeases:
    """Leases on one PostgreSQL server: the `Leases` port's adapter."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def lease(self, name: str) -> Lease:
        """A lease on `name`, not yet taken."""
        return Lease(self.engine, name)

    async def owners(self, names: Sequence[str]) -> dict[str, dict[str, object]]:
        """Who holds each of `names`' leases (absent: nobody)."""
        return await owners(self.engine, names)
