"""Rebuild and replay as jobs: started through the ops API, run by a dramatiq worker process."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases
from tests.ops.helpers import Db, caught_up
from tests.readside.test_fulfilment import place, setup_catalog

Auth = Callable[..., dict[str, str]]
ALL = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]


async def finished(api: httpx.AsyncClient, admin: dict[str, str], url: str) -> dict[str, Any]:
    """Follow a job until it is done or failed (bounded)."""
    deadline = time.monotonic() + 60
    while (job := (await api.get(url, headers=admin)).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)
    return job


async def test_rebuild_and_replay_jobs_run_on_a_worker_and_report_progress(
    ops_api: httpx.AsyncClient,
    auth: Auth,
    admin: dict[str, str],
    worker_process: subprocess.Popen[bytes],
    pg_store: PostgresEventStore,
    mongo_db: Db,
) -> None:
    await setup_catalog(ops_api, auth(), {"JOB": 5})
    order = await place(ops_api, auth(), JOB=2)
    await caught_up(pg_store, mongo_db, ALL, seconds=30)

    started = await ops_api.post("/api/v1/ops/projections/products/rebuild", headers=admin)
    assert started.status_code == 202, started.text
    job = await finished(ops_api, admin, started.json()["status_url"])
    assert job["status"] == "done" and job["kind"] == "rebuild" and job["target"] == "products"
    assert job["result"]["generation"] == 1 and job["done"] == job["total"] > 0
    assert (await Aliases(mongo_db).live("products"))[0] == 1
    assert await mongo_db["products__g1"].count_documents({"sku": "JOB", "reserved": 2}) == 1

    replay = await ops_api.post(f"/api/v1/ops/streams/{order}/replay", headers=admin)
    assert replay.status_code == 202
    replayed = await finished(ops_api, admin, replay.json()["status_url"])
    assert replayed["status"] == "done", replayed
    assert replayed["result"]["orders"] == 1 and replayed["result"]["sales_daily"] == 1


async def test_ops_job_routes_refuse_what_does_not_exist_or_is_not_allowed(
    ops_api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    missing_stream = "00000000-0000-0000-0000-000000000000"
    assert (
        await ops_api.post("/api/v1/ops/projections/nope/rebuild", headers=admin)
    ).status_code == 404
    assert (
        await ops_api.post(f"/api/v1/ops/streams/{missing_stream}/replay", headers=admin)
    ).status_code == 404
    assert (await ops_api.get(f"/api/v1/ops/jobs/{'0' * 32}", headers=admin)).status_code == 404
    assert (await ops_api.get("/api/v1/ops/jobs/not-a-job-id", headers=admin)).status_code == 422
    writer = auth("commands:write")
    assert (
        await ops_api.post("/api/v1/ops/projections/products/rebuild", headers=writer)
    ).status_code == 403
    assert (await ops_api.post("/api/v1/ops/projections/products/rebuild")).status_code == 401
