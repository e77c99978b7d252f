"""The event stores every contract test runs against: in-memory and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.base import EventStore
from eventstore.memory import InMemoryEventStore
from eventstore.postgres import PostgresEventStore

OpenStore = Callable[[], EventStore]


@pytest.fixture(params=["memory", "postgres"])
def open_store(request: pytest.FixtureRequest, engine: AsyncEngine) -> OpenStore:
    """Each store, as a function giving a new handle on it (each process holds its own)."""
    if request.param == "memory":
        shared = InMemoryEventStore()
        return lambda: shared
    return lambda: PostgresEventStore(engine)


@pytest.fixture(params=["memory", "postgres"])
def expiring_store(
    request: pytest.FixtureRequest, engine: AsyncEngine, clean_db: None
) -> EventStore:
    """Each store, empty, keeping idempotency records for no time at all (locks as usual)."""
    if request.param == "memory":
        store = InMemoryEventStore()
        store.idempotency_ttl = 0
        return store
    return PostgresEventStore(engine, idempotency_ttl=0)
