"""Liveness, readiness (MongoDB) and metrics of the query API."""

from __future__ import annotations

from fastapi import Request

from core.health import health_router


async def ping_mongo(request: Request) -> None:
    """One round trip to MongoDB."""
    await request.app.state.db.command("ping")


router = health_router("mongodb", ping_mongo)
