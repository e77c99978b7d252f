"""Fixtures for the read side: subscribers over the test databases, and a way to drain them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.postgres import PostgresEventStore
from eventstore.repository import Repository
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import PROJECTIONS, build, ensure_indexes
from subscriptions import Subscriber
from workers.fulfilment import FulfilmentProcess
from workers.runner import CatchUp, drain

Db = AsyncDatabase[dict[str, Any]]


def subscribers(db: Db, repo: Repository) -> dict[str, Subscriber]:
    """Every projection (on its plain collections) and the fulfilment process, by name."""
    found: dict[str, Subscriber] = {name: build(name, db) for name in PROJECTIONS}
    found[FulfilmentProcess.name] = FulfilmentProcess(repo)
    return found


@pytest.fixture
async def catch_up(mongo_db: Db, pg_store: PostgresEventStore, clean_db: None) -> CatchUp:
    """A catch-up runner over an empty event store and an empty read-model database."""
    for name in PROJECTIONS:
        await ensure_indexes(mongo_db, name)
    return CatchUp(
        pg_store, Checkpoints(mongo_db), ParkedEvents(mongo_db), batch_size=50, backoff=0.01
    )


@pytest.fixture
def settle(
    catch_up: CatchUp, mongo_db: Db, pg_store: PostgresEventStore
) -> Callable[[], Awaitable[int]]:
    """Run every projection and the fulfilment process until nothing is left to do."""
    subs = list(subscribers(mongo_db, Repository(pg_store)).values())

    async def run() -> int:
        return await drain(catch_up, subs)

    return run
