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
from collections.abc import Awaitable, Callable, Hashable, Sequence
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

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass
class _Queued(Generic[Job, Result]):
    job: Job
    future: asyncio.Future[Result]


class Batcher(Generic[Job, Result]):
    """Runs jobs alone while few are in flight, and the queued ones together otherwise.

    `run_many` answers each job of a batch with its result or with the error it alone failed
    with; if the whole batch fails with an error `alone_on` accepts, each job is run alone.
    """

    def __init__(
        self,
        run_one: Callable[[Job], Awaitable[Result]],
        run_many: Callable[[Sequence[Job]], Awaitable[list[Result | Exception]]],
        alone_on: Callable[[BaseException], bool],
        max_in_flight: int = 2,
    ) -> None:
        self._run_one, self._run_many, self._alone_on = run_one, run_many, alone_on
        self.max_in_flight = max_in_flight
        self._queue: collections.deque[_Queued[Job, Result]] = collections.deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, job: Job) -> Result:
        """The job's result: at once alone while few are in flight, else with the next batch."""
        if self._in_flight < self.max_in_flight and not self._queue:
            self._in_flight += 1
            try:
                return await self._run_one(job)
            finally:
                self._in_flight -= 1
                self._launch()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(job, future))
        # A waiter cancelled before its batch left is dropped from the queue (see _take); one
        # cancelled after may still be committed, as a statement cancelled mid-way may be.
        return await future

    def admission(self) -> Callable[[Job], bool]:
        """Whether a job may join the batch being formed (asked in arrival order): any may."""
        return lambda job: True

    def _launch(self) -> None:
        while self._queue and self._in_flight < self.max_in_flight:
            batch = self._take()
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._run(batch), name="ordertrail-batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Queued[Job, Result]]:
        """The queued jobs that fit one batch, in arrival order; the rest stay queued."""
        batch: list[_Queued[Job, Result]] = []
        kept: collections.deque[_Queued[Job, Result]] = collections.deque()
        admit = self.admission()
        while self._queue:
            queued = self._queue.popleft()
            if queued.future.done():  # its caller gave up before it left
                continue
            (batch if admit(queued.job) else kept).append(queued)
        self._queue = kept
        return batch

    async def _run(self, batch: list[_Queued[Job, Result]]) -> None:
        try:
            if len(batch) == 1:
                await self._settle(batch[0])
                return
            try:
                results = await self._run_many([q.job for q in batch])
            except Exception as exc:
                if not self._alone_on(exc):
                    raise
                for queued in batch:  # one of them lost a race: each finds out on its own
                    await self._settle(queued)
                return
            for queued, outcome in zip(batch, results, strict=True):
                if queued.future.done():
                    continue
                if isinstance(outcome, Exception):
                    queued.future.set_exception(outcome)
                else:
                    queued.future.set_result(outcome)
        except Exception as exc:  # the store is down, say: every job of the batch failed
            for queued in batch:
                if not queued.future.done():
                    queued.future.set_exception(exc)
        except BaseException:
            for queued in batch:
                queued.future.cancel()
            raise
        finally:
            self._in_flight -= 1
            self._launch()

    async def _settle(self, queued: _Queued[Job, Result]) -> None:
        """Run one job alone and hand its outcome, whatever it is, to its caller."""
        try:
            result = await self._run_one(queued.job)
        except Exception as exc:
            if not queued.future.done():
                queued.future.set_exception(exc)
            return
        if not queued.future.done():
            queued.future.set_result(result)


@dataclass(frozen=True)
class _Append(Generic[Tag]):
    item: Item
    tag: Tag
    written: frozenset[UUID]
    touched: frozenset[UUID]
    events: int


class GroupCommit(Batcher[_Append[Tag], list[Position]]):
    """Runs appends alone while few are in flight, and queued ones together otherwise."""

    def __init__(
        self,
        run_one: RunOne[Tag],
        run_many: RunMany[Tag],
        alone_on: Callable[[BaseException], bool],
        max_in_flight: int = 2,
        max_events: int = 256,
        distinct: Callable[[Tag], Hashable] = lambda tag: None,
    ) -> None:
        async def one(append: _Append[Tag]) -> list[Position]:
            return await run_one(append.item, append.tag)

        async def many(appends: Sequence[_Append[Tag]]) -> list[list[Position] | Exception]:
            return await run_many([(a.item, a.tag) for a in appends])

        super().__init__(one, many, alone_on, max_in_flight)
        self.max_events, self.distinct = max_events, distinct

    async def append(self, item: Item, tag: Tag) -> list[Position]:
        """The positions of `item`'s events once committed; [] if its checks refused it."""
        written = frozenset(s.stream_id for s in item if s.events)
        touched = frozenset(s.stream_id for s in item)
        events = sum(len(s.events) for s in item)
        return await self.submit(_Append(item, tag, written, touched, events))

    def admission(self) -> Callable[[_Append[Tag]], bool]:
        """Within `max_events`, never an append touching a stream another one writes to, and
        never two whose tags are the same to `distinct` (None: no matter)."""
        written: set[UUID] = set()
        touched: set[UUID] = set()
        named: set[Hashable] = set()
        events = 0

        def admit(append: _Append[Tag]) -> bool:
            nonlocal events
            fits = not touched or events + append.events <= self.max_events
            apart = not (append.written & touched or append.touched & written)
            name = None if append.tag is None else self.distinct(append.tag)
            if not (fits and apart and (name is None or name not in named)):
                return False
            written.update(append.written)
            touched.update(append.touched)
            if name is not None:
                named.add(name)
            events += append.events
            return True

        return admit
