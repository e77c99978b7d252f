"""The ops routes the console uses for parked events, jobs, streams by SKU and the audit."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.values import product_id, stock_item_id
from eventstore.postgres import PostgresEventStore
from tests.ops.helpers import Db, caught_up
from tests.ops.test_jobs import finished
from tests.readside.test_fulfilment import setup_catalog
from tests.readside.test_reliability import insert_poison
from workers.service import SubscriptionService

Auth = Callable[..., dict[str, str]]
ALL = ["products", "stock", "orders", "sales_daily", "audit_log", "fulfilment"]
PARKED = "/api/v1/ops/parked"


async def test_parked_events_are_listed_retried_and_skipped_over_http(
    ops_api: httpx.AsyncClient,
    auth: Auth,
    admin: dict[str, str],
    worker_process: subprocess.Popen[bytes],
    pg_store: PostgresEventStore,
    engine: AsyncEngine,
    mongo_db: Db,
) -> None:
    await setup_catalog(ops_api, auth(), {"PR1": 1})
    ghost = await insert_poison(engine)
    await caught_up(pg_store, mongo_db, ALL)

    listed = (await ops_api.get(PARKED, headers=admin)).json()["subscribers"]
    assert set(listed) == set(ALL) and listed["products"]["waiting"] == 1
    [entry] = listed["products"]["events"]
    assert entry["stream_id"] == ghost and entry["type"] == "ProductRenamed"
    one = await ops_api.get(PARKED, params={"subscriber": "products"}, headers=admin)
    assert set(one.json()["subscribers"]) == {"products"}
    assert (
        await ops_api.get(PARKED, params={"subscriber": "nope"}, headers=admin)
    ).status_code == 404

    # A worker runs the retry (it refolds with the projection's code): a job to follow.
    started = await ops_api.post(f"{PARKED}/products/retry", headers=admin)
    assert started.status_code == 202, started.text
    job = await finished(ops_api, admin, started.json()["status_url"])
    assert job["status"] == "done" and job["kind"] == "retry" and job["target"] == "products"
    assert job["result"]["fixed"] == 0 and job["result"]["retried"] == 1
    assert job["result"]["still_failing"]  # the product never existed: still parked

    skip = f"{PARKED}/products/skip"
    bad = await ops_api.post(skip, json={"position": "1.2"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
    wrong = await ops_api.post(skip, json={"position": "f" * 32}, headers=admin)
    assert wrong.status_code == 404 and wrong.json()["code"] == "not_found"
    writer = await ops_api.post(skip, json={"position": entry["position"]}, headers=auth())
    assert writer.status_code == 403  # commands:write is not enough
    done = await ops_api.post(
        skip, json={"position": entry["position"], "reason": "test"}, headers=admin
    )
    assert done.status_code == 200 and done.json()["skipped"] is True
    after = (await ops_api.get(PARKED, headers=admin)).json()["subscribers"]["products"]
    assert after == {"waiting": 0, "events": []}
    kept = (await ops_api.get(PARKED, params={"skipped": "true"}, headers=admin)).json()
    [skipped] = kept["subscribers"]["products"]["events"]
    assert skipped["skipped"]["by"] == "admin" and skipped["skipped"]["reason"] == "test"


async def test_streams_by_sku_jobs_and_the_audit_over_http(
    ops_api: httpx.AsyncClient,
    auth: Auth,
    admin: dict[str, str],
    worker: SubscriptionService,
    pg_store: PostgresEventStore,
    mongo_db: Db,
) -> None:
    await setup_catalog(ops_api, auth(sub="catalogue"), {"SK1": 3})
    await caught_up(pg_store, mongo_db, ALL)
    found = (await ops_api.get("/api/v1/ops/streams", params={"sku": "SK1"}, headers=admin)).json()
    assert {s["stream_id"] for s in found["streams"]} == {
        str(product_id("SK1")),
        str(stock_item_id("SK1")),
    }
    none = await ops_api.get("/api/v1/ops/streams", params={"sku": "NOPE"}, headers=admin)
    assert none.json()["streams"] == []

    entries = (await ops_api.get("/api/v1/ops/audit", headers=admin)).json()["entries"]
    assert entries and all(e["actor"] == "catalogue" for e in entries)
    first = entries[-1]
    by_correlation = await ops_api.get(
        "/api/v1/ops/audit", params={"correlation_id": first["correlation_id"]}, headers=admin
    )
    assert [e["event_id"] for e in by_correlation.json()["entries"]] == [first["event_id"]]
    typed = await ops_api.get("/api/v1/ops/audit", params={"type": "StockReceived"}, headers=admin)
    assert [e["type"] for e in typed.json()["entries"]] == ["StockReceived"]

    jobs = (await ops_api.get("/api/v1/ops/jobs", headers=admin)).json()["jobs"]
    assert isinstance(jobs, list)
