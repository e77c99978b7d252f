"""`parked list|retry|skip`, `jobs`, `status --watch` and `--json` on the reporting verbs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from eventstore.postgres import PostgresEventStore
from tests.ops.conftest import ORDERTRAIL, Cli
from tests.ops.helpers import Db, caught_up
from tests.readside.test_fulfilment import setup_catalog
from tests.readside.test_reliability import insert_poison
from workers.jobs import Jobs
from workers.service import SubscriptionService

Auth = Callable[..., dict[str, str]]
ALL = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a verb printed (and it succeeded)."""
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


async def test_parked_list_retry_and_skip(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    engine: AsyncEngine,
    mongo_db: Db,
    cli: Cli,
) -> None:
    """A poison event is listed, still fails on retry (exit 1), and once skipped is neither
    waiting nor a hole: the audit passes and says one event was skipped."""
    await setup_catalog(api, auth(), {"PK1": 1})
    ghost = await insert_poison(engine)  # a rename of a product never registered
    await caught_up(pg_store, mongo_db, ALL)

    listed = as_json(await cli("parked", "list", "products", "--json"))
    [entry] = listed["products"]["events"]
    assert listed["products"]["waiting"] == 1
    assert entry["stream_id"] == ghost and entry["type"] == "ProductRenamed" and entry["error"]
    table = await cli("parked", "list")
    assert table.returncode == 0 and "1 parked event(s) waiting" in table.stdout
    assert (await cli("audit", "products")).returncode == 1  # parked: a hole

    retried = await cli("parked", "retry", "products", "--json")
    assert retried.returncode == 1  # still failing: the product never existed
    assert json.loads(retried.stdout)["still_failing"]

    # A skip asks first; without a yes on stdin nothing changes.
    declined = await cli("parked", "skip", "products", entry["position"])
    assert declined.returncode != 0
    assert as_json(await cli("parked", "list", "products", "--json"))["products"]["waiting"] == 1
    wrong = await cli("parked", "skip", "products", "999999999.0", "--yes")
    assert wrong.returncode == 2 and "no parked event" in wrong.stderr

    skipped = await cli(
        "parked", "skip", "products", entry["position"], "--yes", "--reason", "test data", "--json"
    )
    assert as_json(skipped)["skipped"] is True
    after = as_json(await cli("parked", "list", "products", "--json"))["products"]
    assert after == {"waiting": 0, "events": []}
    with_skipped = as_json(await cli("parked", "list", "products", "--skipped", "--json"))
    [kept] = with_skipped["products"]["events"]
    assert kept["skipped"]["reason"] == "test data" and kept["skipped"]["by"]
    audit = await cli("audit", "products", "--json")
    assert (
        as_json(audit)["products"]["holes"] == []
        and json.loads(audit.stdout)["products"]["skipped"] == 1
    )
    status = as_json(await cli("status", "--json"))
    assert status["subscribers"]["products"]["parked"] == 0
    # Twice is an error: it is no longer waiting.
    assert (await cli("parked", "skip", "products", entry["position"], "--yes")).returncode == 2


async def test_jobs_lists_the_newest_first_with_progress(mongo_db: Db, cli: Cli) -> None:
    """Jobs started through the API are listed, newest first, with their state."""
    jobs = Jobs(mongo_db)
    first = await jobs.create("rebuild", "products")
    await asyncio.sleep(0.01)
    second = await jobs.create("replay", "00000000-0000-0000-0000-000000000001")
    await jobs.update(first, status="done", total=10, done=10, rate=250.0)
    listed = as_json(await cli("jobs", "--json"))["jobs"]
    assert [job["_id"] for job in listed[:2]] == [second, first]
    assert listed[1]["status"] == "done" and listed[1]["done"] == 10
    assert [job["_id"] for job in as_json(await cli("jobs", "--limit", "1", "--json"))["jobs"]] == [
        second
    ]
    table = await cli("jobs")
    assert table.returncode == 0 and first in table.stdout and "250/s" in table.stdout


async def test_reporting_verbs_speak_json(
    api: httpx.AsyncClient,
    auth: Auth,
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    cli: Cli,
) -> None:
    """rebuild, replay and snapshots drop print one JSON document with --json."""
    await setup_catalog(api, auth(), {"JS1": 2})
    await caught_up(pg_store, mongo_db, ALL)
    rebuilt = as_json(await cli("rebuild", "stock", "--json"))
    assert rebuilt["stock"]["events"] >= 1 and rebuilt["stock"]["generation"] >= 1
    stream = (await mongo_db["products"].find_one({"sku": "JS1"}) or {})["_id"]
    replayed = as_json(await cli("replay", "--stream", stream, "--json"))
    assert replayed["stream"] == stream and replayed["rewritten"]["products"] == 1
    assert as_json(await cli("snapshots", "drop", "--json"))["dropped"] >= 0
    unknown = await cli("replay", "--stream", "00000000-0000-0000-0000-000000000009")
    assert unknown.returncode == 2  # no such stream: a bad argument, not a hole


def test_status_watch_prints_a_report_per_interval_and_ends_cleanly_on_ctrl_c(
    read_settings: Settings, worker: SubscriptionService
) -> None:
    """--watch --json: one JSON line per interval; SIGINT ends it with exit 0."""
    env = {
        **os.environ,
        "DATABASE_URL": read_settings.database_url,
        "MONGODB_URL": read_settings.mongodb_url,
        "MONGODB_DB": read_settings.mongodb_db,
    }
    argv = [str(ORDERTRAIL), "status", "--watch", "--interval", "0.2", "--json"]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    reports = [json.loads(process.stdout.readline()) for _ in range(3)]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert all(set(r["subscribers"]) == set(ALL) for r in reports)
    assert "Traceback" not in err
