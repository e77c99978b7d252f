"""A batch that lost a race to another writer is re-run, never parked; always losing fails it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from eventstore.records import StoredEvent
from eventstore.repository import ConcurrencyConflict
from projections.registry import build
from tests.readside.test_fulfilment import setup_catalog
from tests.readside.test_workers import Db
from workers.runner import CatchUp

Auth = Callable[..., dict[str, str]]


class LosesRaces:
    """A subscriber whose first `losses` applies lose a race to another writer."""

    def __init__(self, inner: Any, losses: float) -> None:
        self.inner, self.losses, self.applies = inner, losses, 0
        self.name, self.handles = inner.name, inner.handles

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        self.applies += 1
        if self.applies <= self.losses:
            raise ConcurrencyConflict("another writer kept winning")
        await self.inner.apply(events)


async def test_a_batch_that_lost_a_race_is_re_run_whole_and_nothing_is_parked(
    api: httpx.AsyncClient, auth: Auth, mongo_db: Db, catch_up: CatchUp
) -> None:
    await setup_catalog(api, auth(), {f"RACE-{i}": 0 for i in range(3)})
    audit = LosesRaces(build("audit_log", mongo_db), losses=2)
    read = await catch_up.run(audit)  # type: ignore[arg-type]
    assert audit.applies == 3  # two lost races, then the whole batch again
    assert await mongo_db["audit_log"].count_documents({}) == read == 3
    assert await mongo_db["parked_events"].count_documents({}) == 0


async def test_a_race_lost_every_time_propagates_after_the_race_retries(
    api: httpx.AsyncClient,
    auth: Auth,
    mongo_db: Db,
    catch_up: CatchUp,
) -> None:
    await setup_catalog(api, auth(), {f"LOSE-{i}": 0 for i in range(3)})
    catch_up.race_retries = 4
    audit = LosesRaces(build("audit_log", mongo_db), losses=math.inf)
    with pytest.raises(ConcurrencyConflict):
        await catch_up.run(audit)  # type: ignore[arg-type]
    # Neither halved nor parked: a lost race is nobody's fault, so the batch waits whole.
    assert audit.applies == 4
    assert await mongo_db["parked_events"].count_documents({}) == 0
    assert await catch_up.checkpoints.load("audit_log") is None
