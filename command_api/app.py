"""The command API's composition root: the one place that picks its concrete adapters.

It reads settings once and builds the engine, the PostgreSQL event store (codec and upcasters
included), the repository, the append signals (NOTIFY, the dramatiq broker) and, when the ops
package is installed, the ops routes' ports. Routes and handlers only see those ports.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dramatiq.brokers.redis import RedisBroker
from fastapi import APIRouter, FastAPI
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from command_api import console, errors
from command_api.dispatch import command_runner
from command_api.fastpath import CommandFastPath, FrontedFastAPI, fast_routes, natively_traced
from command_api.feed import Feed, HeadWatch
from command_api.routes import feed, health, orders, products, stock
from core import heap, openapi, tracing
from core.cors import with_cors
from core.db import create_engine
from core.errors import ValidationErrorResponse
from core.http import RequestContextMiddleware
from core.logging import configure_logging
from core.metrics import (
    APPEND_SECONDS,
    EVENTS_APPENDED,
    HttpMetrics,
    count_retry,
    count_snapshot,
    labelled,
)
from core.mongo import create_mongo_client, database
from core.settings import Settings, get_settings
from core.supervisor import Supervisor
from eventstore.driver import dispose, ping
from eventstore.inspect import PostgresInspector
from eventstore.listen import Listener, asyncpg_dsn
from eventstore.notify import Coalescer, forward_to, postgres_notifier
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.repository import Repository
from eventstore.snapshots import SnapshotWriter, snapshot_writer
from messaging import appended_message, create_broker

# A command side deployed without the ops package (and the read side it needs) still serves
# commands; with it, the ops routes are mounted here.
OPS_ROUTES = importlib.util.find_spec("ops") is not None
if OPS_ROUTES:
    from ops import routes as ops_routes
    from subscriptions.ports import ReadSide
    from workers.jobs import Jobs
    from workers.lease import PostgresLeases
Document = dict[str, Any]
DESCRIPTION = """Commands for the ordertrail catalog, inventory and orders.

Every command answers `{"id", "version", "position"}` with `ETag` and `X-Position`. Send
`If-Match: "<version>"` for optimistic concurrency (412 on mismatch) and `Idempotency-Key` to make
retries safe (a repeat replays the first answer with `Idempotent-Replayed: true`).
"""


def record_append(streams: Sequence[StreamAppend], _: Position, seconds: float) -> None:
    """Append metrics, and the append's span when tracing."""
    APPEND_SECONDS.observe(seconds)
    for stream in streams:
        labelled(EVENTS_APPENDED, stream.stream_type).inc(len(stream.events))
    tracing.append_span(streams, _, seconds)


# NOTIFY is the fast path; the dramatiq message reaches workers whose LISTEN is down (a tick
# would too, later). A few a second is plenty, and each costs a thread hop and a Redis script.
DRAMATIQ_INTERVAL = 0.2
FEED_LISTENER = "ordertrail-feed-listener"


def dramatiq_signal(broker: RedisBroker, min_interval: float = DRAMATIQ_INTERVAL) -> Coalescer:
    """Sends `appended(token)` after commits, from a thread (the Redis client blocks)."""

    async def send(position: Position) -> None:
        await asyncio.to_thread(broker.enqueue, appended_message(position.token))

    return Coalescer(send, "dramatiq", min_interval)


@dataclass
class Wired:
    """What the command API's lifespan opened, to close at shutdown."""

    engine: AsyncEngine
    signals: list[Coalescer]
    snapshots: SnapshotWriter | None
    listener: Listener
    ops_client: AsyncMongoClient[Document] | None = None


def wire_feed(app: FastAPI, settings: Settings, store: PostgresEventStore) -> Listener:
    """The event feed, woken by this process's appends at once and by others' NOTIFY."""
    watch = HeadWatch()
    store.on_appended(lambda _, last, __: watch.heard(last))
    app.state.feed = Feed(store, watch, settings.feed_max_clients)
    dsn, timeout = asyncpg_dsn(settings.database_url), settings.db_connect_timeout
    return Listener(dsn, timeout, watch.heard, asyncio.Event(), FEED_LISTENER, watch.heard_token)


def wire(app: FastAPI, settings: Settings) -> Wired:
    """Build the concrete adapters and hand the routes their ports (in `app.state`)."""
    engine = create_engine(settings, "ordertrail-command-api")
    store = PostgresEventStore(
        engine, settings.idempotency_ttl_seconds, settings.idempotency_lock_seconds
    )
    broker = create_broker(settings.redis_url)
    # Workers wake on NOTIFY and on a dramatiq message; either may be lost, the tick covers it.
    signals = [postgres_notifier(store), dramatiq_signal(broker)]
    for signal in signals:
        store.on_appended(forward_to(signal))
    store.on_appended(record_append)
    app.state.settings = settings
    snapshots = snapshot_writer(store, settings.snapshot_interval, count_snapshot)
    app.state.repository = Repository(
        store, retries=settings.command_retries, on_retry=count_retry, snapshots=snapshots
    )
    app.state.probe = lambda: ping(engine)
    wired = Wired(engine, signals, snapshots, wire_feed(app, settings, store))
    if OPS_ROUTES:
        wired.ops_client = wire_ops(app, settings, engine, store, broker)
    return wired


def wire_ops(
    app: FastAPI,
    settings: Settings,
    engine: AsyncEngine,
    store: PostgresEventStore,
    broker: RedisBroker,
) -> AsyncMongoClient[Document]:
    """The ops routes' ports: the read side over this process's engine, and the job queue."""
    # Connected lazily, per ops request: no command ever waits on the read-model database.
    client = create_mongo_client(settings, "ordertrail-command-api-ops")
    db = database(client, settings)
    side = ReadSide(store, PostgresInspector(engine), PostgresLeases(engine), db)
    stalled = settings.subscriber_stalled_seconds
    enqueue = ops_routes.enqueuer(broker.enqueue)
    app.state.ops = ops_routes.OpsPorts(side, Jobs(db), enqueue, stalled)
    return client


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the command API; `settings` default to the environment's (read once, here)."""
    settings = settings or get_settings()
    settings.require_secret()
    configure_logging(settings.log_level, settings.log_style)
    tracing.configure_tracing("ordertrail-command-api")  # before FastAPI decides to trace

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        wired = wire(app, settings)
        for signal in wired.signals:
            signal.start()
        supervisor = Supervisor(wired.listener.stop)
        supervisor.start(FEED_LISTENER, wired.listener.run)
        # Read once: OpenTelemetry providers are configured before the app serves, if at all.
        app.state.traced = natively_traced(app)
        heap.settle()
        try:
            yield
        finally:
            wired.listener.stop.set()
            await supervisor.join()
            for signal in wired.signals:
                await signal.stop()
            if wired.snapshots is not None:
                await wired.snapshots.drain()  # before the engine goes: they are under way
            if wired.ops_client is not None:
                await wired.ops_client.close()
            await dispose(wired.engine)

    app = FrontedFastAPI(
        title="ordertrail command API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.verifier = settings.token_verifier()
    errors.install(app)
    modules = (products, stock, orders, feed, health)
    routers = [openapi.document(module.router) for module in modules]
    for router in routers:
        app.include_router(router)
    if OPS_ROUTES:
        ops_routes.mount(app, settings.metrics_refresh_seconds)
        app.include_router(console.router)  # the page over the ops routes
    openapi.finish_schema(app, {"ValidationErrorResponse": ValidationErrorResponse})
    app.front = front(app, routers, settings)
    return app


def front(app: FrontedFastAPI, routers: list[APIRouter], settings: Settings) -> ASGIApp:
    """CORS, request ids and the body limit for every request, then the fast path for commands."""
    inner: ASGIApp = app.behind
    if settings.command_fast_path:
        routes = fast_routes(routers, command_runner)

        def untraced() -> bool:
            return not getattr(app.state, "traced", False)

        inner = CommandFastPath(inner, routes, app.exception_handlers, untraced)
    # CORS outermost: a preflight is answered before the body limit or a route sees it.
    return with_cors(
        HttpMetrics(RequestContextMiddleware(inner, max_body_bytes=settings.max_body_bytes)),
        settings.cors_origins,
    )
