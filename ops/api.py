"""Operator routes of the command API (scope ops:admin): status, rebuild and replay jobs."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from core import openapi
from core.auth import Principal
from core.errors import ADMIN_ERRORS, error_responses
from core.http import require_scope
from core.metrics import (
    PARKED_EVENTS,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    SUBSCRIBER_UP,
    CachedRefresh,
)
from core.mongo import create_mongo_client, database
from core.settings import Settings
from core.signals import REBUILD_ACTOR, REPLAY_ACTOR, create_broker, job_message
from ops.admin import to_json
from ops.status import gather_status
from projections.documents import Document
from projections.registry import PROJECTIONS
from workers.jobs import Jobs

router = APIRouter(prefix="/api/v1/ops", tags=["ops"])
NOT_FOUND = {**ADMIN_ERRORS, **error_responses(e404="No such projection, stream or job")}


Admin = Annotated[Principal, Depends(require_scope("ops:admin"))]


async def read_db(request: Request) -> AsyncDatabase[Document]:
    """The read-model database (for checkpoints and jobs)."""
    db: AsyncDatabase[Document] = request.app.state.ops_db
    return db


Db = Annotated[AsyncDatabase[Document], Depends(read_db)]


@router.get("/status", responses=ADMIN_ERRORS)
async def status(request: Request, db: Db, _: Admin) -> JSONResponse:
    """As `ordertrail status --json`: subscribers' checkpoints, lag, owners, parked events."""
    stalled = request.app.state.settings.subscriber_stalled_seconds
    report = await gather_status(request.app.state.engine, db, stalled_after=stalled)
    return JSONResponse(content=_plain(report))


@router.post("/projections/{name}/rebuild", status_code=202, responses=NOT_FOUND)
async def start_rebuild(name: str, request: Request, db: Db, _: Admin) -> dict[str, str]:
    """Start a blue/green rebuild on a worker; follow it at /api/v1/ops/jobs/{job_id}."""
    if name not in PROJECTIONS:
        raise HTTPException(404, detail=f"unknown projection {name!r}")
    return await _enqueue(request, db, "rebuild", REBUILD_ACTOR, name)


@router.post("/streams/{stream_id}/replay", status_code=202, responses=NOT_FOUND)
async def start_replay(stream_id: UUID, request: Request, db: Db, _: Admin) -> dict[str, str]:
    """Re-project one stream on a worker; follow it at /api/v1/ops/jobs/{job_id}."""
    if not await request.app.state.repository.store.read_stream(stream_id, 1, 1):
        raise HTTPException(404, detail=f"stream {stream_id} not found")
    return await _enqueue(request, db, "replay", REPLAY_ACTOR, str(stream_id))


@router.get("/jobs/{job_id}", responses=NOT_FOUND)
async def job(
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], db: Db, _: Admin
) -> JSONResponse:
    """A job's status and progress (done, total, rate, ETA)."""
    found = await Jobs(db).get(job_id)
    if found is None:
        raise HTTPException(404, detail=f"job {job_id} not found")
    found["job_id"] = found.pop("_id")
    return JSONResponse(content=_plain(found))


async def _enqueue(request: Request, db: Db, kind: str, actor: str, target: str) -> dict[str, str]:
    jobs = Jobs(db)
    job_id = await jobs.create(kind, target)
    broker = request.app.state.ops_broker
    try:
        await asyncio.to_thread(broker.enqueue, job_message(actor, job_id, target))
    except Exception as exc:  # Redis down: say so; the job never started
        await jobs.update(job_id, status="failed", error=f"could not enqueue: {exc}")
        raise HTTPException(
            503, detail="job queue unavailable", headers={"Retry-After": "5"}
        ) from exc
    return {"job_id": job_id, "status_url": f"/api/v1/ops/jobs/{job_id}"}


def _plain(data: Any) -> Any:
    return json.loads(to_json(data))


async def read_models_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """MongoDB cannot be reached (only these routes need it)."""
    return JSONResponse({"detail": "read models unavailable"}, 503, {"Retry-After": "1"})


async def refresh_lag_gauges(app: FastAPI) -> None:
    """Projection lag and parked counts, as `status` sees them, into the Prometheus gauges."""
    stalled = app.state.settings.subscriber_stalled_seconds
    report = await gather_status(app.state.engine, app.state.ops_db, stalled_after=stalled)
    for name, sub in report["subscribers"].items():
        PROJECTION_LAG_EVENTS.labels(name).set(sub["lag_events"])
        PROJECTION_LAG_SECONDS.labels(name).set(sub["lag_seconds"])
        PARKED_EVENTS.labels(name).set(sub["parked"])
        SUBSCRIBER_UP.labels(name).set(1 if sub["state"] == "running" else 0)


def attach(app: FastAPI, settings: Settings) -> AsyncMongoClient[Document]:
    """Mount the routes; returns the MongoDB client to close at shutdown."""
    client = create_mongo_client(settings, "ordertrail-command-api-ops")
    app.state.ops_db = database(client, settings)
    app.state.refresh_metrics = CachedRefresh(
        lambda: refresh_lag_gauges(app), settings.metrics_refresh_seconds
    )
    app.state.ops_broker = create_broker(settings)
    app.include_router(openapi.document(router))
    app.add_exception_handler(PyMongoError, read_models_unavailable)
    return client
