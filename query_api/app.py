"""The query API's one wiring point: settings, MongoDB, the checkpoint watcher, routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import errors, heap, openapi, tracing
from core.cors import cors_options
from core.errors import ValidationErrorResponse, error_body
from core.http import RequestContextMiddleware
from core.logging import configure_logging
from core.metrics import HttpMetrics
from core.mongo import create_mongo_client, database
from core.settings import Settings, get_settings
from query_api.freshness import CheckpointWatcher
from query_api.live import LiveHub
from query_api.routes import audit, dashboards, health, live, orders, products, stock

log = logging.getLogger(__name__)
LIVE_PREFIX = "/api/v1/live/"
DESCRIPTION = """Read models of ordertrail for dashboards.

Lists answer `{"items", "total", "page", "size"}` (`size` ≤ 200). Send the `X-Position` token a
command returned as `X-Min-Position` to read your own write: the route waits (2 s at most) until
its read models include it, else 503 with `Retry-After`. Every answer carries `X-Read-Position`.
"""


async def mongo_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """MongoDB cannot be reached."""
    log.warning("read models unavailable: %s", exc)
    body = error_body("read models unavailable", "unavailable")
    return JSONResponse(body, 503, {"Retry-After": "1"})


class ReadPositionMiddleware:
    """X-Read-Position on every answer (errors too).

    Pure ASGI: a BaseHTTPMiddleware would add a memory stream per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start":
                position = scope.get("state", {}).get("read_position")
                if position is not None:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-read-position", position.encode()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_position)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the query API; `settings` default to the environment's."""
    settings = settings or get_settings()
    settings.require_secret()
    configure_logging(settings.log_level, settings.log_style)
    tracing.configure_tracing("ordertrail-query-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = create_mongo_client(settings, "ordertrail-query-api")
        app.state.settings, app.state.db = settings, database(client, settings)
        app.state.watcher = CheckpointWatcher(app.state.db)
        with contextlib.suppress(PyMongoError):  # down at start: the background refresh retries
            await app.state.watcher.refresh()  # aliases known before the first request
        app.state.watcher.start()
        app.state.live = LiveHub(app.state.watcher, settings.live_queue_size)
        app.state.live.start()
        heap.settle()
        try:
            yield
        finally:
            await app.state.live.stop()
            await app.state.watcher.stop()
            await client.close()

    app = FastAPI(
        title="ordertrail query API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.verifier = settings.token_verifier()
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ReadPositionMiddleware)
    app.add_middleware(HttpMetrics)
    if (cors := cors_options(settings.cors_origins)) is not None:
        app.add_middleware(CORSMiddleware, **cors)  # added last: outermost, preflights first
    errors.install(app)
    app.add_exception_handler(PyMongoError, mongo_unavailable)
    for module in (products, stock, orders, dashboards, audit, live, health):
        app.include_router(openapi.document(module.router))
    openapi.finish_schema(app, {"ValidationErrorResponse": ValidationErrorResponse})
    return app
