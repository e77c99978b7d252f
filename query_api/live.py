"""Live read models: a document or a dashboard, sent again each time the projections change it.

One hub per process follows the checkpoint watcher (query_api.freshness), whose one poll of
the checkpoints serves every request. After each poll, each *topic* (an order, a SKU's stock, a
product, a dashboard) that someone listens to and whose projections moved is read again, once
for all its listeners: documents of one collection in one `$in` query, each dashboard by its
own query, at most every `min_interval` seconds. A change (a different answer) goes to every
listener's queue with the position it includes (the projections' checkpoints when it was read).

Bounded: a listener's queue holds `queue_size` changes; one that falls that far behind is cut
off with the reason, rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from core.metrics import LIVE_CLIENTS
from core.mongo import find_by_ids
from core.supervisor import Supervisor, TaskHealth
from projections.documents import Document
from query_api.deps import ReadModels
from query_api.freshness import CheckpointWatcher

log = logging.getLogger(__name__)
Render = Callable[[Document | None], Any]  # a document (None: absent) as the route answers it
Load = Callable[[ReadModels], Awaitable[Any]]  # a dashboard, as its route answers it
Change = tuple[str, Any]  # (position, answer as JSON-ready data)


@dataclass(frozen=True)
class Topic:
    """What a stream follows: one document (`collection`, `key`) or a dashboard (`load`)."""

    name: str  # e.g. "orders/<id>": listeners of one name share one read
    projections: tuple[str, ...]
    collection: str | None = None
    key: str | None = None
    render: Render | None = field(default=None, compare=False)
    load: Load | None = field(default=None, compare=False)


class Listener:
    """One stream's queue of changes; `cut` says why it was dropped, if it was."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Change] = asyncio.Queue(size)
        self.cut: str | None = None

    def offer(self, change: Change) -> None:
        """Queue a change, or cut the listener off if it let its queue fill up."""
        if self.cut is not None:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.cut = f"slow consumer: {self.queue.maxsize} changes not taken"


@dataclass
class _State:
    topic: Topic
    listeners: set[Listener] = field(default_factory=set)
    answer: Any = None
    read_at: str = ""  # the position the last read includes
    changed_at: str = ""  # the position of the last change sent
    last_read: float = float("-inf")
    seen: bool = False  # read at least once


class LiveHub:
    """Reads each followed topic once per change of its projections, for all its listeners."""

    def __init__(
        self, watcher: CheckpointWatcher, queue_size: int = 64, min_interval: float = 0.05
    ) -> None:
        self.watcher, self.queue_size, self.min_interval = watcher, queue_size, min_interval
        self.states: dict[str, _State] = {}
        self._pending: dict[str, asyncio.Future[_State]] = {}  # first reads under way
        self.listeners = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, topic: Topic, after: str | None) -> Listener:
        """Follow `topic`; the current answer comes first unless `after` already includes it."""
        state = self.states.get(topic.name) or await self._first(topic)
        listener = Listener(self.queue_size)
        state.listeners.add(listener)
        self.listeners += 1
        LIVE_CLIENTS.inc()
        if after is None or state.changed_at > after:
            listener.offer((state.read_at, state.answer))
        return listener

    async def _first(self, topic: Topic) -> _State:
        """The topic's state, read once however many subscribe while it is being read."""
        pending = self._pending.get(topic.name)
        if pending is not None:
            await asyncio.wait([pending])  # its outcome, without taking its exception as ours
            if pending.cancelled():  # that subscriber left mid-read: read for ourselves
                return self.states.get(topic.name) or await self._first(topic)
            if (error := pending.exception()) is not None:
                raise error
            return pending.result()
        pending = self._pending[topic.name] = asyncio.get_running_loop().create_future()
        try:
            state = _State(topic)
            await self._read([state])  # before it is shared: a failed read shares nothing
            self.states[topic.name] = state
            pending.set_result(state)
            return state
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved here: whoever else waits raises it
            raise
        finally:
            del self._pending[topic.name]

    def unsubscribe(self, topic: Topic, listener: Listener) -> None:
        """Stop following; a topic nobody follows is forgotten."""
        state = self.states.get(topic.name)
        if state is None or listener not in state.listeners:
            return
        state.listeners.discard(listener)
        self.listeners -= 1
        LIVE_CLIENTS.dec()
        if not state.listeners:
            del self.states[topic.name]

    def start(self) -> None:
        """Follow the watcher in the background, under supervision."""
        self._stop = asyncio.Event()
        self._task = Supervisor(self._stop, max_delay=1.0).start("live-hub", self._run)

    async def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, health: TaskHealth) -> None:
        while not self._stop.is_set():
            await self.watcher.changed()
            now = time.monotonic()
            due = [
                state
                for state in list(self.states.values())
                if now - state.last_read >= self.min_interval
                and self.watcher.position(state.topic.projections) > state.read_at
            ]
            if not due:
                continue
            try:
                await self._read(due)
            except PyMongoError as exc:  # the next poll tries again
                log.warning("live read models: read failed: %s", exc)
                continue
            health.ok()

    async def _read(self, states: list[_State]) -> None:
        """Read the states' topics as of the watcher's view; send what changed."""
        view = self.watcher.view
        models = ReadModels(self.watcher.db, view.names)
        documents = await self._documents(models, [s.topic for s in states if s.topic.key])
        for state in states:
            topic = state.topic
            if topic.load is not None:
                answer = await topic.load(models)
            else:
                assert topic.render is not None and topic.collection and topic.key
                answer = topic.render(documents.get((topic.collection, topic.key)))
            state.read_at, state.last_read = view.position(topic.projections), time.monotonic()
            if answer != state.answer or not state.seen:
                state.answer, state.changed_at, state.seen = answer, state.read_at, True
                for listener in list(state.listeners):
                    listener.offer((state.read_at, answer))

    async def _documents(
        self, models: ReadModels, topics: list[Topic]
    ) -> dict[tuple[str, str], Document]:
        """The topics' documents, one query per collection."""
        keys: dict[str, list[str]] = {}
        for topic in topics:
            assert topic.collection and topic.key
            keys.setdefault(topic.collection, []).append(topic.key)
        found: dict[tuple[str, str], Document] = {}
        for collection, ids in keys.items():
            for key, doc in (await find_by_ids(models[collection], ids)).items():
                found[(collection, key)] = doc
        return found
