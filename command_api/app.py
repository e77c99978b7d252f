"""The command API's one wiring point: settings, engine, event store, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from command_api import errors
from command_api.dispatch import command_runner
from command_api.fastpath import CommandFastPath, FrontedFastAPI, fast_routes, natively_traced
from command_api.routes import health, ops, orders, products, stock
from core import heap, openapi
from core.db import create_engine
from core.http import RequestContextMiddleware
from core.logging import configure_logging
from core.metrics import APPEND_SECONDS, EVENTS_APPENDED, count_retry, labelled
from core.settings import Settings, get_settings
from core.signals import dramatiq_signal
from eventstore.driver import dispose
from eventstore.notify import Coalescer, forward_to, postgres_notifier
from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import StreamAppend
from eventstore.repository import Repository

DESCRIPTION = """Commands for the ordertrail catalog, inventory and orders.

Every command answers `{"id", "version", "position"}` with `ETag` and `X-Position`. Send
`If-Match: "<version>"` for optimistic concurrency (412 on mismatch) and `Idempotency-Key` to make
retries safe (a repeat replays the first answer with `Idempotent-Replayed: true`).
"""


def record_append(streams: Sequence[StreamAppend], _: Position, seconds: float) -> None:
    """Append metrics."""
    APPEND_SECONDS.observe(seconds)
    for stream in streams:
        labelled(EVENTS_APPENDED, stream.stream_type).inc(len(stream.events))


def wire(app: FastAPI, settings: Settings, engine: AsyncEngine) -> list[Coalescer]:
    """Attach the concrete adapters to the app; returns the signals to start and stop."""
    store = PostgresEventStore(
        engine, settings.idempotency_ttl_seconds, settings.idempotency_lock_seconds
    )
    # Workers wake on NOTIFY and on a dramatiq message; either may be lost, the tick covers it.
    signals = [postgres_notifier(store), dramatiq_signal(settings)]
    for signal in signals:
        store.on_appended(forward_to(signal))
    store.on_appended(record_append)
    app.state.settings, app.state.engine = settings, engine
    app.state.repository = Repository(store, retries=settings.command_retries, on_retry=count_retry)
    return signals


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the command API; `settings` default to the environment's."""
    settings = settings or get_settings()
    settings.require_secret()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings, "ordertrail-command-api")
        signals = wire(app, settings, engine)
        for signal in signals:
            signal.start()
        # Read once: OpenTelemetry providers are configured before the app serves, if at all.
        app.state.traced = natively_traced(app)
        heap.settle()
        try:
            yield
        finally:
            for signal in signals:
                await signal.stop()
            if ops_client is not None:
                await ops_client.close()
            await dispose(engine)

    app = FrontedFastAPI(
        title="ordertrail command API", version="1", description=DESCRIPTION, lifespan=lifespan
    )
    errors.install(app)
    routers = [openapi.document(module.router) for module in (products, stock, orders, ops, health)]
    for router in routers:
        app.include_router(router)
    ops_client = attach_ops(app, settings)
    openapi.declare_bearer(app)
    app.front = front(app, routers, settings)
    return app


def front(app: FrontedFastAPI, routers: list[APIRouter], settings: Settings) -> ASGIApp:
    """Request ids and the body limit for every request, then the fast path for commands."""
    inner: ASGIApp = app.behind
    if settings.command_fast_path:
        routes = fast_routes(routers, command_runner)

        def untraced() -> bool:
            return not getattr(app.state, "traced", False)

        inner = CommandFastPath(inner, routes, app.exception_handlers, untraced)
    return RequestContextMiddleware(inner, max_body_bytes=settings.max_body_bytes)


def attach_ops(app: FastAPI, settings: Settings) -> Any:
    """Operator routes (status, rebuild, replay) from the ops package, when it is installed."""
    try:
        from ops.api import attach
    except ImportError:  # a command side deployed without the read side still serves commands
        return None
    return attach(app, settings)
