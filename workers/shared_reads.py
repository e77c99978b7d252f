"""Reads of the event log shared by the subscribers of one process."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent


class SharedReads:
    """One read of the log serves every subscriber of a process that asks for the same page.

    A process's subscribers mostly wait together at the head and are woken by the same signal;
    each used to make its own identical read. A read is shared only with subscribers whose
    latest wake-up signal was counted before it started, so it sees every commit that signal
    announced: nobody takes an older answer for a newer signal (and so never misses an event
    until the next tick). Subscribers treat events as read-only, so sharing them is safe.
    """

    def __init__(self, store: EventStore, keep: int = 16) -> None:
        self.store, self.keep = store, keep
        self.signals = 0  # wake-up signals (NOTIFY, messages, ticks) counted so far
        self._reads: OrderedDict[
            tuple[Position | None, int], tuple[int, asyncio.Future[list[StoredEvent]]]
        ] = OrderedDict()

    def signal(self) -> None:
        """Count a wake-up: reads started from now on are newer than every earlier one."""
        self.signals += 1

    async def read_all(self, after: Position | None, limit: int, since: int) -> list[StoredEvent]:
        """Events after `after`, from a read started once `since` signals had been counted."""
        key = (after, limit)
        found = self._reads.get(key)
        if found is None or found[0] < since:
            future = asyncio.ensure_future(self.store.read_all(after, limit))
            found = self._reads[key] = (self.signals, future)
            future.add_done_callback(lambda done: self._settled(key, done))
            self._reads.move_to_end(key)
            while len(self._reads) > self.keep:
                self._reads.popitem(last=False)
        # A caller giving up (a discarded prefetch) must not cancel the read for the others.
        return list(await asyncio.shield(found[1]))

    def _settled(self, key: tuple[Position | None, int], done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:  # retrieved: never cached
            current = self._reads.get(key)
            if current is not None and current[1] is done:
                del self._reads[key]
