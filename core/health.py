"""/health, /ready and /metrics, the same on every API process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from core.metrics import CachedRefresh, render

log = logging.getLogger(__name__)
Probe = Callable[[Request], Awaitable[object]]


def health_router(dependency: str, probe: Probe) -> APIRouter:
    """Liveness, readiness (`probe` reaches `dependency`, else 503) and Prometheus metrics."""
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        """The process can reach its store (503 if not)."""
        try:
            await probe(request)
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable", dependency: "unreachable"}, 503)
        return JSONResponse({"status": "ready", dependency: "ok"})

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (gauges that need a query are cached, refreshed every few s)."""
        refresh: CachedRefresh | None = getattr(request.app.state, "refresh_metrics", None)
        if refresh is not None:
            await refresh()
        body, content_type = render()
        return Response(body, media_type=content_type)

    return router
