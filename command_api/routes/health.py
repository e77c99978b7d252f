"""Liveness, readiness (PostgreSQL) and metrics of the command API."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import Request

from core.health import health_router


async def ping_postgres(request: Request) -> None:
    """One round trip to PostgreSQL."""
    async with request.app.state.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


router = health_router("postgres", ping_postgres)
