"""Fault injection: subscribers fail at random, as real ones can, for 30 s under command load.

Two worker processes run with ORDERTRAIL_FAULT_INJECTION: poison events (one of every family an
event's own effects can raise), outages (MongoDB, PostgreSQL and socket errors) and crashes of a
type nobody lists. At the end no subscriber has stopped, every one is at the head, exactly the
poisoned events are parked, `retry-parked` applies them once injection is off, and the usual
proof holds: audit clean, every read model equal to a from-scratch rebuild.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from eventstore.postgres import PostgresEventStore
from projections.registry import build
from tests.reliability.faults import (
    ORDERTRAIL,
    SUBSCRIBERS,
    CommandLoad,
    Db,
    assert_consistent,
    process_env,
    settled,
    workers,
)
from workers.faults import FaultPlan
from workers.fulfilment import FulfilmentProcess

Auth = Callable[..., dict[str, str]]
SKUS = ["INJ-A", "INJ-B", "INJ-C", "INJ-D"]
PLAN = "seed=11,poison=0.02,outage=0.02,crash=0.01"


@pytest.fixture
def injection_seconds(long_form: bool) -> float:
    """30 s; 5 minutes in the long form."""
    return 300.0 if long_form else 30.0


def handles(name: str, db: Db) -> frozenset[str]:
    """The event types subscriber `name` is given."""
    return FulfilmentProcess.handles if name == FulfilmentProcess.name else build(name, db).handles


async def expected_parked(store: PostgresEventStore, db: Db) -> set[tuple[str, str]]:
    """(subscriber, position) of every event the plan poisons for a subscriber handling it."""
    plan, expected = FaultPlan.parse(PLAN), set()
    types = {name: handles(name, db) for name in SUBSCRIBERS}
    after = None
    while events := await store.read_all(after, limit=5000):
        for event in events:
            for name in SUBSCRIBERS:
                if event.type in types[name] and plan.poisoned(name, event):
                    expected.add((name, event.token))
        after = events[-1].position
    return expected


def worker_logs(directory: Path) -> str:
    """Everything the worker processes logged."""
    return "".join(path.read_text() for path in directory.glob("worker-*.log"))


async def retry_parked(settings: Settings, name: str) -> dict[str, Any]:
    """`ordertrail retry-parked NAME --json`, injection off; it must exit 0."""
    env = {**os.environ, **process_env(settings)}
    argv = [str(ORDERTRAIL), "retry-parked", name]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {"output": done.stdout}


@pytest.mark.timeout(600)  # load, catch-up under faults, six retry-parked runs, audit, rebuilds
async def test_random_faults_for_30_seconds_stop_nothing_and_park_exactly_the_poison(
    read_settings: Settings,
    clean_db: None,
    engine: AsyncEngine,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    api: httpx.AsyncClient,
    auth: Auth,
    injection_seconds: float,
    tmp_path: Path,
) -> None:
    load = CommandLoad(api, auth(), SKUS, clients=1)  # ~75 commands/s: minutes, not more
    await load.setup()
    injected = {"ORDERTRAIL_ENV": "test", "ORDERTRAIL_FAULT_INJECTION": PLAN}
    injected["PROJECTION_BATCH_SIZE"] = "50"
    started = time.monotonic()
    with workers(read_settings, tmp_path, count=2, **injected):
        async with load.running():
            await asyncio.sleep(injection_seconds)
        # Every subscriber reaches the head and stays there, faults and all: none stopped.
        # Each poisoned event costs its subscriber its retries' backoff (0.7 s), one after another.
        await settled(engine, mongo_db, seconds=max(180.0, 5 * injection_seconds))
        expected = await expected_parked(pg_store, mongo_db)
        parked = {(d["projection"], d["position"]) async for d in mongo_db["parked_events"].find()}
    logs = await asyncio.to_thread(worker_logs, tmp_path)
    assert "injected crash" in logs and "injected outage" in logs  # every family was exercised
    assert {name for name, _ in expected} >= {"audit_log", "fulfilment"}, expected
    assert parked == expected, (sorted(parked - expected)[:5], sorted(expected - parked)[:5])

    caught_up_at = time.monotonic()
    for name in SUBSCRIBERS:  # injection off: every parked event applies after all
        await retry_parked(read_settings, name)
    assert await mongo_db["parked_events"].count_documents({}) == 0
    (tmp_path / "clean").mkdir()
    with workers(read_settings, tmp_path / "clean", count=1):
        figures = await assert_consistent(read_settings, engine, mongo_db, load)
    extra = {"parked": len(parked), "seconds_to_consistent": round(time.monotonic() - started)}
    extra["retry_and_proof_seconds"] = round(time.monotonic() - caught_up_at)
    print(f"\ninjection figures: {json.dumps(figures | extra)}")
    assert load.statuses().keys() <= {200, 201, 409}, load.statuses()
