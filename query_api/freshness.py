"""Read-your-writes: wait until the projections a route reads have passed a position token.

One watcher per process reads the checkpoints: every 100 ms, and every 10 ms while a request is
waiting (the first read 10 ms after a request starts waiting, whatever the idle pause had left).
Waiting requests sleep on a shared condition instead of polling MongoDB themselves, and
requests that do not wait use the cached positions: checkpoints only move forwards, so a cached
one is still a true lower bound of what a read sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from projections.aliases import Aliases
from projections.base import Document

TOKEN = re.compile(r"^[0-9a-f]{32}$")
log = logging.getLogger(__name__)


class NotFreshEnough(Exception):
    """The projections did not reach the token in time."""


class CheckpointWatcher:
    """Knows where every projection is; wakes waiters when checkpoints move."""

    def __init__(self, db: AsyncDatabase[Document], idle: float = 0.1, busy: float = 0.01) -> None:
        self.collection, self.idle, self.busy = db["checkpoints"], idle, busy
        self.tokens: dict[str, str] = {}
        # Logical -> physical collection names: a rebuild swaps generations behind aliases.
        self.names: dict[str, str] = {}
        self.aliases = Aliases(db)
        self._changed = asyncio.Condition()
        self._hurry = asyncio.Event()  # a request started waiting: cut the idle pause short
        self._waiters = 0
        self._aliases_read = float("-inf")
        self._task: asyncio.Task[None] | None = None

    async def refresh(self, aliases: bool = True) -> dict[str, str]:
        """Read every checkpoint (and alias) once."""
        docs = self.collection.find({}, {"token": 1})
        self.tokens = {doc["_id"]: doc.get("token") or "" async for doc in docs}
        if aliases:
            self.names = await self.aliases.all_live()
            self._aliases_read = time.monotonic()
        return self.tokens

    def position(self, names: Sequence[str]) -> str:
        """The oldest checkpoint among `names`: every one of them has read at least this far."""
        return min((self.tokens.get(name, "") for name in names), default="")

    async def wait_for(self, token: str, names: Sequence[str], seconds: float) -> str:
        """Return once every projection in `names` has passed `token`; else NotFreshEnough."""
        if self.position(names) >= token:  # the cached positions already show it
            return self.position(names)
        # No read of its own: under load every request would re-read the checkpoints (one
        # query per request); the watcher's next poll, hurried along, serves all waiters.
        self._waiters += 1
        self._hurry.set()
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(lambda: self.position(names) >= token)
        except TimeoutError:
            raise NotFreshEnough(token) from None
        finally:
            self._waiters -= 1
        return self.position(names)

    def start(self) -> None:
        """Start the background refresh (inside a running loop)."""
        self._task = asyncio.create_task(self._poll(), name="checkpoint-watcher")

    async def _poll(self) -> None:
        while True:
            if self._waiters:
                await asyncio.sleep(self.busy)
            else:
                # Without this, a request arriving during the idle pause waited out the rest
                # of it (up to 100 ms) before the first re-read: half the freshness time.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self.idle)
                if self._hurry.is_set():
                    self._hurry.clear()
                    await asyncio.sleep(self.busy)  # give the projection a moment to land
            try:
                # Busy polls re-read checkpoints only; aliases (which change once per rebuild,
                # with a grace period before the old collections go) at the idle pace.
                await self.refresh(aliases=time.monotonic() - self._aliases_read >= self.idle)
            except PyMongoError as exc:
                log.warning("checkpoint refresh failed: %s", exc)
                continue
            async with self._changed:
                self._changed.notify_all()

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
