"""An audit's scratch collection: a recount kept in the read-model database, not in memory.

A scratch collection is named `audit_scratch_<random>` and holds a mark document whose `alive`
time the audit moves forward as it works (at least once a page). A run drops its own scratch
when it ends, however it ends, and first drops every other whose mark is older than STALE: one
a crashed run left behind. Audits may run side by side, so a fresh mark is never touched.

A run whose scratch was dropped under it (stalled past STALE) finds its mark gone at its next
touch and fails, rather than report holes from a partial recount.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

PREFIX = "audit_scratch_"
MARK = "~alive"  # sorts after every key the recount writes, so a sorted read meets it last
STALE = timedelta(minutes=10)


class ScratchLost(RuntimeError):
    """The scratch collection was dropped while the audit used it."""


class Scratch:
    """One audit run's scratch collection and its liveness mark."""

    def __init__(
        self, db: AsyncDatabase[Any], clock: Callable[[], datetime], name: str | None = None
    ) -> None:
        self.db, self.clock = db, clock
        self.name = name or f"{PREFIX}{uuid4().hex}"
        self.collection: AsyncCollection[Any] = db[self.name]

    async def open(self) -> None:
        """Drop crashed runs' scratch, then create this one with its mark."""
        await sweep(self.db, self.clock())
        await self.collection.insert_one({"_id": MARK, "alive": self.clock().timestamp()})

    async def touch(self) -> None:
        """Move the mark forward; fail if the collection was dropped under us."""
        mark = {"$set": {"alive": self.clock().timestamp()}}
        if (await self.collection.update_one({"_id": MARK}, mark)).matched_count != 1:
            raise ScratchLost(f"{self.name} was dropped during the audit; run it again")

    async def close(self) -> None:
        """Drop the collection."""
        await self.db.drop_collection(self.name)


async def sweep(db: AsyncDatabase[Any], now: datetime) -> list[str]:
    """Drop the scratch collections whose mark is stale or missing; their names."""
    dropped = []
    for name in await db.list_collection_names():
        if not name.startswith(PREFIX):
            continue
        mark = await db[name].find_one({"_id": MARK})
        if mark is None or mark["alive"] < (now - STALE).timestamp():
            await db.drop_collection(name)
            dropped.append(name)
    return dropped


@asynccontextmanager
async def scratch(db: AsyncDatabase[Any], clock: Callable[[], datetime]) -> AsyncIterator[Scratch]:
    """A fresh scratch collection for the block, dropped when the block ends."""
    space = Scratch(db, clock)
    try:
        await space.open()
        yield space
    finally:
        await space.close()
