"""The subscription service every worker process runs: leases, catch-up, wake-ups.

Each subscriber (projection or process) gets a task that tries to own it (a lease), catches it
up, then waits for a wake-up: PostgreSQL NOTIFY, a dramatiq `appended` message, or the periodic
tick that covers a lost signal and lets a worker take over from one that died.

Every task runs under a `Supervisor`: whatever it raises is logged, counted, recorded where
`status` reads it, and the task starts again after a backoff. No subscriber stops while its
worker lives; one that keeps failing shows as failing, and the worker's health turns bad.
Beside the subscribers run the LISTEN connection and the idempotency purge (workers/purge.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from core.metrics import SUBSCRIBER_FAILURES, SUBSCRIBER_UP, labelled
from core.supervisor import Supervisor, TaskHealth
from eventstore.listen import LISTENER_TASK, Listener, wait_any
from eventstore.positions import Position
from eventstore.repository import Repository
from projections.aliases import Aliases
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import PROJECTIONS, build, ensure_indexes
from subscriptions import SUBSCRIBER_NAMES, Subscriber
from subscriptions.ports import Lease, ReadSide
from workers.fulfilment import FulfilmentProcess
from workers.purge import PURGE_TASK, IdempotencyPurge
from workers.runner import BatchListener, CatchUp, Faults
from workers.shared_reads import SharedReads

log = logging.getLogger(__name__)
OWNERSHIP_CHECK_SECONDS = 0.5
# How often an owner says it is alive where `status` reads it (and clears an old failure).
HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class ServiceConfig:
    """What the composition root tells the service: its name and its pace."""

    worker: str  # this process's name in leases, logs and failure records
    batch_size: int = 1000
    retries: int = 3
    tick_seconds: float = 1.0
    unhealthy_seconds: float = 60.0
    purge_batch: int = 1000  # expired idempotency records deleted per statement
    purge_seconds: float = 60.0  # between purge passes


@dataclass(frozen=True)
class Wiring:
    """The stores one run of the service works on, opened by the composition root."""

    side: ReadSide
    repository: Repository  # the fulfilment process issues commands
    listen_dsn: str  # asyncpg's form: LISTEN runs on a connection of its own
    connect_timeout: float
    faults: Faults | None = None


# Opens the stores for one run; the callable given is what an append by this process wakes.
Connect = Callable[[Callable[[], None]], AbstractAsyncContextManager[Wiring]]


async def live_subscriber(
    name: str, db: Any, repo: Repository, indexed: set[tuple[str, int]] | None = None
) -> Subscriber:
    """The subscriber `name`, writing to its live generation of collections.

    Indexes are ensured once per generation (per `indexed` set), not on every wake-up.
    """
    if name not in PROJECTIONS:
        return FulfilmentProcess(repo)
    generation, names = await Aliases(db).live(name)
    if indexed is None or (name, generation) not in indexed:
        await ensure_indexes(db, name, names)
        if indexed is not None:
            indexed.add((name, generation))
    return build(name, db, names)


@dataclass
class SubscriptionService:
    """Runs the subscribers this process can own until stopped, each under supervision."""

    config: ServiceConfig
    connect: Connect
    only: frozenset[str] | None = None
    on_batch: BatchListener | None = None
    supervisor: Supervisor | None = None
    _wakes: list[asyncio.Event] = field(default_factory=list)
    _indexed: set[tuple[str, int]] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _shared: SharedReads | None = None

    def wake(self) -> None:
        """Wake every subscriber now (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        if self._shared is not None:
            self._shared.signal()  # before any subscriber runs: its reads must be newer
        for event in self._wakes:
            event.set()

    def health(self) -> dict[str, Any]:
        """This process's supervised tasks, and whether any failed for too long (safe anywhere)."""
        supervisor = self.supervisor
        if supervisor is None:
            return {"healthy": False, "reason": "not started", "tasks": {}}
        limit = self.config.unhealthy_seconds
        failing = [health.name for health in supervisor.unhealthy(limit)]
        tasks = {name: health.snapshot() for name, health in list(supervisor.tasks.items())}
        reason = f"failing for over {limit:g} s: {', '.join(failing)}" if failing else None
        return {"healthy": not failing, "reason": reason, "tasks": tasks}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then give every lease up."""
        self._loop = asyncio.get_running_loop()
        async with self.connect(self.wake) as wired:
            side = wired.side
            self._shared = SharedReads(side.store)
            catch_up = self._catch_up(side, wired.faults)
            failures = FailureBook(catch_up.checkpoints, self.config.worker)
            self.supervisor = Supervisor(stop, on_failure=failures.record)
            stores = (side.db, wired.repository)
            for name in SUBSCRIBER_NAMES:
                if self.only is None or name in self.only:
                    served = Served(self, name, side.leases.lease(name), stores, catch_up, stop)
                    self.supervisor.start(name, served.serve)
            listener = Listener(wired.listen_dsn, wired.connect_timeout, self.wake, stop)
            self.supervisor.start(LISTENER_TASK, listener.run)
            self.supervisor.start(PURGE_TASK, self._purge(side, stop).run)
            await self.supervisor.join()

    def _purge(self, side: ReadSide, stop: asyncio.Event) -> IdempotencyPurge:
        config = self.config
        return IdempotencyPurge(
            side.store, side.leases, config.purge_batch, config.purge_seconds, stop
        )

    def _catch_up(self, side: ReadSide, faults: Faults | None) -> CatchUp:
        config = self.config
        return CatchUp(
            side.store,
            Checkpoints(side.db),
            ParkedEvents(side.db),
            batch_size=config.batch_size,
            retries=config.retries,
            on_batch=self.on_batch,
            shared=self._shared,
            faults=faults,
        )


@dataclass
class FailureBook:
    """Writes a failing subscriber's error where `status` reads it (best effort)."""

    checkpoints: Checkpoints
    worker: str

    async def record(self, health: TaskHealth, error: BaseException) -> None:
        """A supervised task failed: if it is a subscriber, count it and store why."""
        if health.name not in SUBSCRIBER_NAMES:  # the listener, the purge: logged and counted
            return
        labelled(SUBSCRIBER_FAILURES, health.name, health.last_kind or "unexpected").inc()
        labelled(SUBSCRIBER_UP, health.name).set(0)
        await self.checkpoints.record_failure(health.name, health.snapshot(), self.worker)


@dataclass
class Served:
    """One subscriber served by this process: lease, catch-up, wait for a wake-up, again."""

    service: SubscriptionService
    name: str
    lease: Lease
    stores: tuple[Any, Repository]
    catch_up: CatchUp
    stop: asyncio.Event
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    beaten: float = float("-inf")

    def __post_init__(self) -> None:
        self.service._wakes.append(self.wake)

    async def serve(self, health: TaskHealth) -> None:
        """Run until stopped; any failure propagates to the supervisor, lease given up."""
        owned, shared = Owned(), self.catch_up.shared
        try:
            while not self.stop.is_set():
                self.wake.clear()
                since = shared.signals if shared is not None else None
                await self._step(owned, since)
                await self._progressed(health, owned)
                await wait_any(self.wake, self.stop, seconds=self.service.config.tick_seconds)
                if shared is not None and not self.wake.is_set():
                    shared.signal()  # a tick covers lost signals: it must not reuse a read
        finally:
            labelled(SUBSCRIBER_UP, self.name).set(0)
            # Let another worker try while this one backs off (and on shutdown, at once).
            with contextlib.suppress(Exception):
                await self.lease.release()

    async def _progressed(self, health: TaskHealth, owned: Owned) -> None:
        """A step succeeded: say so, and as owner beat now and then (clearing a failure)."""
        recovered = health.ok()
        labelled(SUBSCRIBER_UP, self.name).set(1 if self.lease.held else 0)
        if not self.lease.held:
            return
        # A new owner also clears what a failed one left on record (it may have died failing).
        due = time.monotonic() - self.beaten >= HEARTBEAT_SECONDS
        if recovered or owned.fresh or due:
            self.beaten, owned.fresh = time.monotonic(), False
            await self.catch_up.checkpoints.beat(self.name, self.service.config.worker)

    async def _step(self, owned: Owned, since: int | None) -> None:
        checkpoints, lease, name = self.catch_up.checkpoints, self.lease, self.name

        async def still_owner() -> bool:
            # Two round trips per batch would double a small batch's cost; once per interval is
            # enough, since every write is guarded and a lost lease cannot double-apply anyway.
            if time.monotonic() - owned.checked < OWNERSHIP_CHECK_SECONDS:
                return True
            owned.checked = time.monotonic()
            if await lease.confirm() and not await checkpoints.handoff_requested(name):
                return True
            # The next step must look again at once and let go: left to the interval, a steady
            # stream of wake-ups would find the check here every time (mid-catch-up, where it
            # only stops the pass) and the owner would keep the lease until its backlog ran out.
            owned.checked = float("-inf")
            return False

        if time.monotonic() - owned.checked >= OWNERSHIP_CHECK_SECONDS or not lease.held:
            owned.checked = time.monotonic()
            if await checkpoints.handoff_requested(name):  # a rebuild or replay needs it
                owned.forget()
                await lease.release()
                return
        if not lease.held:
            owned.forget()  # whoever held it meanwhile may have moved checkpoint or alias
            if not await lease.try_acquire():
                return
        if owned.subscriber is None:
            owned.subscriber = await live_subscriber(name, *self.stores, self.service._indexed)
            owned.position = await checkpoints.load(name)
            owned.fresh = True
        owned.position, _ = await self.catch_up.advance(
            owned.subscriber, owned.position, still_owner=still_owner, since=since
        )


@dataclass
class Owned:
    """What an owner keeps between wake-ups while it holds the lease.

    Nobody else moves a subscriber's checkpoint or swaps its collections while the lease is
    held (rebuilds and replays take it over first), so neither needs re-reading on each wake-up:
    two fewer round trips to the read-model server per subscriber per wake-up.
    """

    subscriber: Subscriber | None = None
    position: Position | None = None
    checked: float = float("-inf")
    fresh: bool = False  # just took the subscriber over: clear a failure left on record

    def forget(self) -> None:
        """Read both again on the next step."""
        self.subscriber, self.position = None, None
