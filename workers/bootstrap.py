"""The worker process's composition root: the one place that picks concrete adapters.

It reads settings once and builds the engine, the PostgreSQL event store (its codec and
upcasters come with it), the repository, the read-model database and the leases. Everything
below takes these as ports (`ReadSide`, `Repository`), never an engine or settings. The CLI
opens the same stores for its one-off work through `read_side`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from core import tracing
from core.db import create_engine
from core.metrics import count_retry, count_snapshot
from core.mongo import create_mongo_client, database
from core.settings import Settings
from eventstore.base import EventStore
from eventstore.driver import dispose
from eventstore.inspect import PostgresInspector
from eventstore.listen import asyncpg_dsn
from eventstore.notify import forward_to, postgres_notifier
from eventstore.postgres import PostgresEventStore
from eventstore.repository import Repository
from eventstore.snapshots import snapshot_writer
from subscriptions.ports import Document, ReadSide
from workers.faults import fault_plan
from workers.lease import PostgresLeases
from workers.runner import BatchListener
from workers.service import ServiceConfig, SubscriptionService, Wiring

# Leases name their owner by the connection's application name, after this prefix.
WORKER_APPLICATION = "ordertrail-worker"


def worker_name(settings: Settings) -> str:
    """This process's name in leases and logs."""
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


def read_side_over(
    engine: AsyncEngine, db: AsyncDatabase[Document], store: PostgresEventStore | None = None
) -> ReadSide:
    """The read side's ports over an open engine and read-model database."""
    store = store or PostgresEventStore(engine)
    return ReadSide(store, PostgresInspector(engine), PostgresLeases(engine), db)


def repository(store: EventStore, settings: Settings) -> Repository:
    """The repository commands go through: lost races retried, long streams snapshotted."""
    snapshots = snapshot_writer(store, settings.snapshot_interval, count_snapshot)
    if tracing.enabled() and isinstance(store, PostgresEventStore):
        store.on_appended(tracing.append_span)  # fulfilment's appends, in their traces
    return Repository(
        store, retries=settings.command_retries, on_retry=count_retry, snapshots=snapshots
    )


@asynccontextmanager
async def opened(
    settings: Settings, application: str, *, retry_writes: bool = True, patient: bool = False
) -> AsyncIterator[tuple[AsyncEngine, AsyncDatabase[Document]]]:
    """A PostgreSQL engine and the read-model database, closed afterwards."""
    engine = create_engine(settings, application)
    client = create_mongo_client(settings, application, retry_writes=retry_writes, patient=patient)
    try:
        yield engine, database(client, settings)
    finally:
        await client.close()
        await dispose(engine)


@asynccontextmanager
async def read_side(settings: Settings, application: str) -> AsyncIterator[ReadSide]:
    """The read side's ports over freshly opened stores, closed afterwards (for batch work:
    ops commands and jobs, whose scans must outlast a pause of the server)."""
    async with opened(settings, application, patient=True) as (engine, db):
        yield read_side_over(engine, db)


def service_config(settings: Settings) -> ServiceConfig:
    """The subscription service's settings."""
    return ServiceConfig(
        worker=worker_name(settings),
        batch_size=settings.projection_batch_size,
        retries=settings.projection_retries,
        tick_seconds=settings.projection_tick_seconds,
        unhealthy_seconds=settings.subscriber_unhealthy_seconds,
        purge_batch=settings.idempotency_purge_batch,
        purge_seconds=settings.idempotency_purge_seconds,
    )


def subscription_service(
    settings: Settings,
    only: frozenset[str] | None = None,
    on_batch: BatchListener | None = None,
) -> SubscriptionService:
    """The subscription service of a worker process, over stores opened at each run."""

    @asynccontextmanager
    async def connect(wake: Callable[[], None]) -> AsyncIterator[Wiring]:
        application = f"{WORKER_APPLICATION} {worker_name(settings)}"
        # Every subscriber write is guarded by `_last`, a unique `_id` or `$max`, and a failed
        # batch is re-run from its checkpoint: the driver's retryable writes would add nothing.
        async with opened(settings, application, retry_writes=False) as (engine, db):
            store = PostgresEventStore(engine)
            # The fulfilment process appends too. Its events wake this process's subscribers at
            # once, and other workers' by NOTIFY as commands do: without either they waited for
            # the next command's signal or for the tick (the last steps of an order, a tick apart).
            notifier = postgres_notifier(store)
            store.on_appended(forward_to(notifier))
            store.on_appended(lambda *_: wake())
            notifier.start()
            commands = repository(store, settings)
            try:
                yield Wiring(
                    read_side_over(engine, db, store),
                    commands,
                    asyncpg_dsn(settings.database_url),
                    settings.db_connect_timeout,
                    fault_plan(settings),
                )
            finally:
                await notifier.stop()
                if commands.snapshots is not None:  # before the engine they write through goes
                    await commands.snapshots.drain()

    return SubscriptionService(service_config(settings), connect, only=only, on_batch=on_batch)
