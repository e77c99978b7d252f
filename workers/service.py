"""The subscription service every worker process runs: leases, catch-up, wake-ups.

Each subscriber (projection or process) gets a task that tries to own it (a lease), catches it
up, then waits for a wake-up: PostgreSQL NOTIFY, a dramatiq `appended` message, or the periodic
tick that covers a lost signal and lets a worker take over from one that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import prometheus_client
from pymongo.errors import PyMongoError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.metrics import count_retry
from core.mongo import create_mongo_client, database
from core.settings import Settings
from eventstore.driver import CONNECTION_LOST, dispose
from eventstore.notify import CHANNEL, forward_to, postgres_notifier
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import StoreUnavailable
from eventstore.repository import Repository
from projections.aliases import Aliases
from projections.base import Subscriber
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import PROJECTIONS, build, ensure_indexes
from workers.fulfilment import FulfilmentProcess
from workers.lease import Lease
from workers.runner import BatchListener, CatchUp, SharedReads

log = logging.getLogger(__name__)
TRANSIENT = (StoreUnavailable, PyMongoError, OSError, TimeoutError)
OWNERSHIP_CHECK_SECONDS = 0.5


def worker_name(settings: Settings) -> str:
    """This process's name in leases and logs."""
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """A plain libpq URL for asyncpg from the SQLAlchemy one."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def subscribers(db: Any, repo: Repository) -> dict[str, Subscriber]:
    """Every projection (on its plain collections) and the fulfilment process, by name."""
    found: dict[str, Subscriber] = {name: build(name, db) for name in PROJECTIONS}
    found[FulfilmentProcess.name] = FulfilmentProcess(repo)
    return found


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
    """Runs the subscribers this process can own until stopped."""

    settings: Settings
    only: frozenset[str] | None = None
    on_batch: BatchListener | None = None
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

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then give every lease up."""
        self._loop = asyncio.get_running_loop()
        serve_metrics(self.settings.worker_metrics_port)
        engine = create_engine(self.settings, f"ordertrail-worker {worker_name(self.settings)}")
        # Every subscriber write is guarded by `_last`, a unique `_id` or `$max`, and a failed
        # batch is re-run from its checkpoint: the driver's retryable writes would add nothing.
        mongo = create_mongo_client(self.settings, "ordertrail-worker", retry_writes=False)
        db = database(mongo, self.settings)
        store = PostgresEventStore(engine)
        # The fulfilment process appends too. Its events wake this process's subscribers at
        # once, and other workers' by NOTIFY as commands do: without either they waited for the
        # next command's signal or for the tick (the last steps of an order, a tick apart).
        notifier = postgres_notifier(store)
        store.on_appended(forward_to(notifier))
        store.on_appended(lambda *_: self.wake())
        notifier.start()
        try:
            repo = Repository(store, retries=self.settings.command_retries, on_retry=count_retry)
            self._shared = SharedReads(store)
            catch_up = self._catch_up(store, db, self._shared)
            names = [*PROJECTIONS, FulfilmentProcess.name]
            tasks = [
                asyncio.create_task(
                    self._serve(engine, name, (db, repo), catch_up, stop), name=name
                )
                for name in names
                if self.only is None or name in self.only
            ]
            async with listening(self.settings, self.wake):
                await stop.wait()
            await asyncio.gather(*tasks)
        finally:
            await notifier.stop()
            await mongo.close()
            await dispose(engine)

    def _catch_up(self, store: PostgresEventStore, db: Any, shared: SharedReads) -> CatchUp:
        settings = self.settings
        return CatchUp(
            store,
            Checkpoints(db),
            ParkedEvents(db),
            batch_size=settings.projection_batch_size,
            retries=settings.projection_retries,
            on_batch=self.on_batch,
            shared=shared,
        )

    async def _serve(
        self,
        engine: AsyncEngine,
        name: str,
        stores: tuple[Any, Repository],
        catch_up: CatchUp,
        stop: asyncio.Event,
    ) -> None:
        wake, lease, owned = asyncio.Event(), Lease(engine, name), Owned()
        self._wakes.append(wake)
        shared = catch_up.shared
        try:
            while not stop.is_set():
                wake.clear()
                since = shared.signals if shared is not None else None
                await self._step(name, stores, catch_up, lease, owned, since)
                await wait_any(wake, stop, seconds=self.settings.projection_tick_seconds)
                if shared is not None and not wake.is_set():
                    shared.signal()  # a tick covers lost signals: it must not reuse a read
        finally:
            with contextlib.suppress(*TRANSIENT):
                await lease.release()

    async def _step(
        self,
        name: str,
        stores: tuple[Any, Repository],
        catch_up: CatchUp,
        lease: Lease,
        owned: Owned,
        since: int | None = None,
    ) -> None:
        checkpoints = catch_up.checkpoints

        async def still_owner() -> bool:
            # Two round trips per batch would double a small batch's cost; once per interval is
            # enough, since every write is guarded and a lost lease cannot double-apply anyway.
            if time.monotonic() - owned.checked < OWNERSHIP_CHECK_SECONDS:
                return True
            owned.checked = time.monotonic()
            return await lease.confirm() and not await checkpoints.handoff_requested(name)

        try:
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
                owned.subscriber = await live_subscriber(name, *stores, self._indexed)
                owned.position = await checkpoints.load(name)
            owned.position, _ = await catch_up.advance(
                owned.subscriber, owned.position, still_owner=still_owner, since=since
            )
        except TRANSIENT as exc:  # a store is down: try again on the next wake-up or tick
            owned.forget()
            log.warning("%s: %s", name, exc)
            with contextlib.suppress(*TRANSIENT):
                await lease.confirm()


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

    def forget(self) -> None:
        """Read both again on the next step."""
        self.subscriber, self.position = None, None


def serve_metrics(port: int) -> None:
    """Expose this process's Prometheus metrics (batch sizes and durations) on `port`."""
    if port:
        try:
            prometheus_client.start_http_server(port)
        except OSError as exc:  # another worker process on this machine serves them already
            log.warning("metrics port %d unavailable: %s", port, exc)


async def wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Return when any event is set or the timeout passes."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


LISTENER_NAME = "ordertrail-listener"
LISTENER_CHECK_SECONDS = 1.0


@contextlib.asynccontextmanager
async def listening(settings: Settings, wake: Callable[[], None]) -> Any:
    """LISTEN for appends while inside, reconnecting whenever the connection is lost.

    Without a connection the tick alone drives the subscribers; a listener that never came back
    after a PostgreSQL restart would leave every projection a tick behind for good.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(_listen(settings, wake, stop), name="listener")
    try:
        yield
    finally:
        stop.set()
        await task


async def _listen(settings: Settings, wake: Callable[[], None], stop: asyncio.Event) -> None:
    warned = False
    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(
                asyncpg_dsn(settings.database_url),
                timeout=settings.db_connect_timeout,
                server_settings={"application_name": LISTENER_NAME},
            )
            await conn.add_listener(CHANNEL, lambda *_: wake())
            if warned:
                log.info("LISTEN connection restored")
            warned = False
            wake()  # notifications sent while we were away are lost: look now
            while not stop.is_set():
                await wait_any(stop, seconds=LISTENER_CHECK_SECONDS)
                # An idle connection does not notice a server restart until it is used.
                await conn.fetchval("SELECT 1", timeout=settings.db_connect_timeout)
        except (*CONNECTION_LOST, asyncpg.PostgresError) as exc:
            if not warned:
                log.warning("LISTEN unavailable, relying on ticks until it is back: %s", exc)
                warned = True
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
        await wait_any(stop, seconds=LISTENER_CHECK_SECONDS)
