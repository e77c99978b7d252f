"""Liveness, readiness (PostgreSQL) and metrics of the command API."""

from __future__ import annotations

from fastapi import Request

from core.health import health_router


async def ping_postgres(request: Request) -> None:
    """One round trip to PostgreSQL, through the probe the composition root gave the app."""
    await request.app.state.probe()


router = health_router("postgres", ping_postgres)
