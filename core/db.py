"""Database engine factory: one pool per process, with short timeouts so outages fail fast."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.settings import Settings

# jsonb columns decoded by orjson: on the catch-up's read path, stdlib json was the largest
# single cost per event after the network.
JSON_OPTIONS: dict[str, Any] = {"json_deserializer": orjson.loads}


def create_engine(settings: Settings, application_name: str = "ordertrail") -> AsyncEngine:
    """An async engine for settings.database_url."""
    connect_args = {
        "timeout": settings.db_connect_timeout,
        "command_timeout": settings.db_command_timeout,
        "server_settings": {"application_name": application_name},
    }
    return create_async_engine(
        settings.database_url,
        # Overflow connections are closed when returned: a pool that fits the concurrency
        # avoids reconnecting (a new backend) under load.
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size // 2,
        pool_timeout=settings.db_connect_timeout,
        connect_args=connect_args,
        # The same for the asyncpg pool beside this one (eventstore.driver reads this option).
        execution_options={"driver_connect_args": connect_args},
        **JSON_OPTIONS,
    )
