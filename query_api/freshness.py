"""Read-your-writes: wait until the projections a route reads have passed a position token.

One watcher per process reads the checkpoints: every 100 ms, and every 10 ms while a request is
waiting (the first read 10 ms after a request starts waiting, whatever the idle pause had left).
Waiting requests sleep on a shared condition instead of polling MongoDB themselves, and
requests that do not wait use the cached positions: checkpoints only move forwards, so a cached
one is still a true lower bound of what a read sees.

A request waiting for one document names it: each busy poll reads those documents too (one
query per collection, beside the checkpoints). A document whose `_last` has reached the token
answers its request from the poll: projections apply events in commit order, so it holds every
event up to the token that touches it, whether or not the checkpoint, saved after the batch's
writes, says so yet. So does one read after checkpoints past the token (those of the previous
poll), even when absent. The wait ends a checkpoint write sooner, with no read of its own.

Each poll reads the aliases after the checkpoints, and a response claims a position and reads
collections of one such pair (a `View`): a rebuild points the alias at its new generation before
it moves the checkpoint there, so collections named after a checkpoint was read hold it. Read
beside the checkpoints (or less often), a checkpoint of the new generation could release a read
of the old, paused one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from core.mongo import find_by_ids
from core.supervisor import Supervisor, TaskHealth
from projections.aliases import Aliases
from projections.documents import Document

TOKEN = re.compile(r"^[0-9a-f]{32}$")
log = logging.getLogger(__name__)


class NotFreshEnough(Exception):
    """The projections did not reach the token in time."""


async def _nothing() -> dict[tuple[str, str], Document]:
    return {}


class Seen(NamedTuple):
    """What a wait for one document ended with."""

    position: str
    document: Document | None
    known: bool  # False: the wait did not read the document; the caller must


class View(NamedTuple):
    """Checkpoints and the live collections read after them: the collections hold each token."""

    tokens: dict[str, str]
    names: dict[str, str]  # logical -> physical collection name

    def position(self, projections: Sequence[str]) -> str:
        """The oldest checkpoint among `projections`: each has read at least this far."""
        return min((self.tokens.get(name, "") for name in projections), default="")

    def physical(self, logical: str) -> str:
        """The live collection behind a logical read-model name."""
        return self.names.get(logical, logical)


class CheckpointWatcher:
    """Knows where every projection is; wakes waiters when checkpoints move."""

    def __init__(self, db: AsyncDatabase[Document], idle: float = 0.1, busy: float = 0.01) -> None:
        self.db, self.collection, self.idle, self.busy = db, db["checkpoints"], idle, busy
        self.view = View({}, {})
        # (logical collection, _id) -> requests waiting for that document; what the last poll
        # found of them (read from the collections of the view before it).
        self._wanted: dict[tuple[str, str], int] = {}
        self.documents: dict[tuple[str, str], Document] = {}
        self._read_keys: set[tuple[str, str]] = set()
        self._covered = self.view  # the view the last poll read the documents after
        self.aliases = Aliases(db)
        self._changed = asyncio.Condition()
        self._hurry = asyncio.Event()  # a request started waiting: cut the idle pause short
        self._waiters = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.supervisor: Supervisor | None = None

    async def refresh(self) -> View:
        """Read every checkpoint and the documents requests wait for, then the aliases."""
        keys, names = set(self._wanted), self.view.names
        tokens, documents = await asyncio.gather(
            self._read_tokens(), self._read_wanted(keys, names) if keys else _nothing()
        )
        # After the checkpoints, not beside them: see the module's docstring.
        live = await self.aliases.all_live()
        # These documents were read after the previous view, from its collections: they hold
        # every event up to its checkpoints (not necessarily up to the ones read beside them).
        self._covered = self.view
        self.view, self.documents, self._read_keys = View(tokens, live), documents, keys
        return self.view

    async def _read_tokens(self) -> dict[str, str]:
        found = self.collection.find({}, {"token": 1})
        return {doc["_id"]: doc.get("token") or "" async for doc in found}

    def position(self, names: Sequence[str]) -> str:
        """The oldest checkpoint among `names` in the current view."""
        return self.view.position(names)

    async def wait_for(self, token: str, names: Sequence[str], seconds: float) -> View:
        """The view once every projection in `names` has passed `token`; else NotFreshEnough."""
        if self.position(names) < token:
            await self._wait(token, seconds, lambda: self.position(names) >= token)
        return self.view

    async def wait_for_document(
        self, token: str, names: Sequence[str], collection: str, key: str, seconds: float
    ) -> Seen:
        """Wait as `wait_for`, or until a poll finds document `key` of `collection` past `token`.

        When a poll read the document for this wait, the answer carries it (None: there is no
        such document) and the position its read includes: the checkpoints of the view it was
        read from, or its own `_last` where newer. Otherwise the caller reads it itself.
        """
        if self.position(names) >= token:
            return Seen(self.position(names), None, known=False)
        wanted = (collection, key)
        self._wanted[wanted] = self._wanted.get(wanted, 0) + 1
        try:
            await self._wait(
                token, seconds, lambda: self.position(names) >= token or self._found(wanted, token)
            )
        finally:
            if self._wanted[wanted] == 1:
                del self._wanted[wanted]
            else:
                self._wanted[wanted] -= 1
        if wanted in self._read_keys:  # else it began waiting while that poll was under way
            covered = self._covered.position(names)
            document = self.documents.get(wanted)
            if document is not None and self._found(wanted, token):
                return Seen(max(covered, document["_last"]), document, known=True)
            if covered >= token:  # read after checkpoints past the token: None means absent
                return Seen(covered, document, known=True)
        return Seen(self.position(names), None, known=False)

    def _found(self, wanted: tuple[str, str], token: str) -> bool:
        document = self.documents.get(wanted)
        return document is not None and document.get("_last", "") >= token

    async def _wait(self, token: str, seconds: float, ready: Callable[[], bool]) -> None:
        # No read of its own: under load every request would re-read the checkpoints (one
        # query per request); the watcher's next poll, hurried along, serves all waiters.
        self._waiters += 1
        self._hurry.set()
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            raise NotFreshEnough(token) from None
        finally:
            self._waiters -= 1

    async def changed(self) -> None:
        """Return after the next poll (live read models follow the polls)."""
        async with self._changed:
            await self._changed.wait()

    def start(self) -> None:
        """Start the background refresh (inside a running loop), under supervision."""
        # A watcher that stopped would turn every X-Min-Position wait into a 503 for good: any
        # error restarts it, after a backoff kept short since requests are waiting on it.
        self._stopping = asyncio.Event()
        self.supervisor = Supervisor(self._stopping, base_delay=self.busy, max_delay=1.0)
        self._task = self.supervisor.start("checkpoint-watcher", self._poll)

    async def _poll(self, health: TaskHealth) -> None:
        started = float("-inf")
        while not self._stopping.is_set():
            if self._waiters:
                # Polls start every `busy` seconds, not `busy` after the last one ended: under
                # load a poll takes several milliseconds, which the wait would add on top.
                await asyncio.sleep(max(0.0, started + self.busy - time.monotonic()))
            else:
                # Without this, a request arriving during the idle pause waited out the rest
                # of it (up to 100 ms) before the first re-read: half the freshness time.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self.idle)
                if self._hurry.is_set():
                    self._hurry.clear()
                    await asyncio.sleep(self.busy)  # give the projection a moment to land
            started = time.monotonic()
            try:
                await self.refresh()
            except PyMongoError as exc:  # retried at the next pace, not after a backoff
                log.warning("checkpoint refresh failed: %s", exc)
                continue
            health.ok()
            async with self._changed:
                self._changed.notify_all()

    async def _read_wanted(
        self, wanted: set[tuple[str, str]], names: dict[str, str]
    ) -> dict[tuple[str, str], Document]:
        """The documents requests wait for, as `names` has them now (one query per collection)."""
        keys: dict[str, list[str]] = {}
        for collection, key in wanted:
            keys.setdefault(collection, []).append(key)
        reads = [
            self._read_some(collection, names.get(collection, collection), ids)
            for collection, ids in keys.items()
        ]
        found: dict[tuple[str, str], Document] = {}
        for documents in await asyncio.gather(*reads):
            found.update(documents)
        return found

    async def _read_some(
        self, logical: str, physical: str, ids: list[str]
    ) -> dict[tuple[str, str], Document]:
        found = await find_by_ids(self.db[physical], ids)
        return {(logical, key): doc for key, doc in found.items()}

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._stopping.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
