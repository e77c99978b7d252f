"""Group commit: appends that arrive while others are being written go out together.

Under load most of PostgreSQL's work per append is the commit (WAL write and flush), not the
row: one transaction holding four one-event appends cost the server about a third of the CPU
per event of four separate ones. So while `max_in_flight` appends are already on their way,
new ones wait in a queue, and each time one finishes, everything queued that fits goes out as
one statement. Nothing is delayed to form a batch: with fewer appends than that in flight, an
append goes out alone at once, in its own statement, so a quiet system sees no difference.

Each append in a batch stays all-or-nothing and keeps its own expected-version checks: the
batch statement inserts the events of every append whose checks pass and none of the others',
which then fail exactly as if they had gone alone. Appends touching the same stream never share
a batch (one could invalidate the other's check within the transaction). If the batch statement
fails on a unique key (a writer in another process got to a version first, or an event id is
reused) or is aborted by the server (a deadlock with another writer), each of its appends is
retried alone, so each gets the answer it would have had (`alone_on` says which errors).

An append may carry a tag the writer needs besides its streams (a keyed append's claim and
response, say): it goes out with the append, alone or in a batch, and a batch may answer one of
its appends with an error of its own (that append's claim was lost) while the others commit.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from eventstore.positions import Position
from eventstore.records import StreamAppend

Item = tuple[StreamAppend, ...]
Tag = TypeVar("Tag")
# One append: its events' positions in order, or [] when its checks refused it.
RunOne = Callable[[Item, Tag], Awaitable[list[Position]]]
# Several: each one's positions as RunOne gives them, or the error that append alone failed with.
RunMany = Callable[[Sequence[tuple[Item, Tag]]], Awaitable[list[list[Position] | Exception]]]


@dataclass
class _Pending(Generic[Tag]):
    item: Item
    tag: Tag
    future: asyncio.Future[list[Position]]
    written: frozenset[UUID]
    touched: frozenset[UUID]
    events: int


class GroupCommit(Generic[Tag]):
    """Runs appends alone while few are in flight, and queued ones together otherwise."""

    def __init__(
        self,
        run_one: RunOne[Tag],
        run_many: RunMany[Tag],
        alone_on: Callable[[BaseException], bool],
        max_in_flight: int = 2,
        max_events: int = 256,
    ) -> None:
        self._run_one, self._run_many, self._alone_on = run_one, run_many, alone_on
        self.max_in_flight, self.max_events = max_in_flight, max_events
        self._queue: collections.deque[_Pending[Tag]] = collections.deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def append(self, item: Item, tag: Tag) -> list[Position]:
        """The positions of `item`'s events once committed; [] if its checks refused it."""
        if self._in_flight < self.max_in_flight and not self._queue:
            self._in_flight += 1
            try:
                return await self._run_one(item, tag)
            finally:
                self._in_flight -= 1
                self._launch()
        written = frozenset(s.stream_id for s in item if s.events)
        touched = frozenset(s.stream_id for s in item)
        events = sum(len(s.events) for s in item)
        future: asyncio.Future[list[Position]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, tag, future, written, touched, events))
        # A waiter cancelled before its batch left is dropped from the queue (see _take); one
        # cancelled after may still be committed, as a statement cancelled mid-way may be.
        return await future

    def _launch(self) -> None:
        while self._queue and self._in_flight < self.max_in_flight:
            batch = self._take()
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._run(batch), name="ordertrail-group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Pending[Tag]]:
        """The queued appends that fit one batch, in arrival order; the rest stay queued."""
        batch: list[_Pending[Tag]] = []
        written: set[UUID] = set()
        touched: set[UUID] = set()
        events, kept = 0, collections.deque[_Pending[Tag]]()
        while self._queue:
            pending = self._queue.popleft()
            if pending.future.done():  # its caller gave up before it left
                continue
            fits = not batch or events + pending.events <= self.max_events
            apart = not (pending.written & touched or pending.touched & written)
            if fits and apart:
                batch.append(pending)
                written |= pending.written
                touched |= pending.touched
                events += pending.events
            else:
                kept.append(pending)
        self._queue = kept
        return batch

    async def _run(self, batch: list[_Pending[Tag]]) -> None:
        try:
            if len(batch) == 1:
                await self._settle(batch[0])
                return
            try:
                results = await self._run_many([(p.item, p.tag) for p in batch])
            except Exception as exc:
                if not self._alone_on(exc):
                    raise
                for pending in batch:  # one of them lost a race: each finds out on its own
                    await self._settle(pending)
                return
            for pending, outcome in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(outcome, Exception):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)
        except Exception as exc:  # the store is down, say: every append of the batch failed
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        except BaseException:
            for pending in batch:
                pending.future.cancel()
            raise
        finally:
            self._in_flight -= 1
            self._launch()

    async def _settle(self, pending: _Pending[Tag]) -> None:
        """Run one append alone and hand its outcome, whatever it is, to its caller."""
        try:
            positions = await self._run_one(pending.item, pending.tag)
        except Exception as exc:
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        if not pending.future.done():
            pending.future.set_result(positions)
