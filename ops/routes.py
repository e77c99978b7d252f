"""The ops HTTP routes (scope ops:admin): status, parked events, streams, audit and jobs.

One router, mounted by the command API's composition root with the ports it built (`OpsPorts`).
The routes reach the stores only through those ports. Commands never wait on what only these
routes use: the read-model database and the job queue are reached per request, and their
failures answer 503 here without touching the command routes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from dramatiq import Message
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import PyMongoError

from core import openapi
from core.auth import Principal
from core.errors import ADMIN_ERRORS, error_body, error_responses
from core.http import require_scope
from core.metrics import (
    PARKED_EVENTS,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    SUBSCRIBER_UP,
    CachedRefresh,
)
from domain.values import product_id, stock_item_id
from messaging import REBUILD_ACTOR, REPLAY_ACTOR, RETRY_ACTOR, job_message
from ops.schemas import StoredEventResponse, StreamEventsResponse
from ops.status import gather_status, to_json
from projections.aliases import Aliases
from projections.checkpoints import ParkedEvents
from subscriptions import PROJECTION_NAMES, SUBSCRIBER_NAMES
from subscriptions.ports import ReadSide
from workers.jobs import Jobs

router = APIRouter(prefix="/api/v1/ops", tags=["ops"])
NOT_FOUND = {**ADMIN_ERRORS, **error_responses(e404="No such projection, stream or job")}
Admin = Annotated[Principal, Depends(require_scope("ops:admin"))]


@dataclass(frozen=True)
class OpsPorts:
    """What the ops routes work through, built by the composition root that mounts them."""

    side: ReadSide
    jobs: Jobs  # the job documents, in the read-model database
    enqueue: Callable[[Message[Any]], Awaitable[None]]  # a job message, to some worker
    stalled_after: float  # seconds without a heartbeat before an owner shows as stalled


def ops_ports(request: Request) -> OpsPorts:
    """The ports the app was wired with."""
    ports: OpsPorts = request.app.state.ops
    return ports


Ports = Annotated[OpsPorts, Depends(ops_ports)]


@router.get("/status", responses=ADMIN_ERRORS)
async def status(ports: Ports, _: Admin) -> JSONResponse:
    """As `ordertrail status --json`: subscribers' checkpoints, lag, owners, parked events."""
    report = await gather_status(ports.side, stalled_after=ports.stalled_after)
    return JSONResponse(content=_plain(report))


@router.get(
    "/streams/{stream_id}/events",
    response_model=StreamEventsResponse,
    responses={**ADMIN_ERRORS, **error_responses(e404="No such stream")},
)
async def stream_events(
    stream_id: UUID,
    ports: Ports,
    _: Admin,
    from_version: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> StreamEventsResponse:
    """A stream's stored events, oldest first, a page at a time."""
    events = await ports.side.store.read_stream(stream_id, from_version, limit + 1)
    if not events and from_version == 1:
        raise HTTPException(404, detail=f"stream {stream_id} not found")
    page = events[:limit]
    return StreamEventsResponse(
        stream_id=stream_id,
        events=[StoredEventResponse(**vars(e) | {"position": e.token}) for e in page],
        next_from_version=page[-1].version + 1 if len(events) > limit else None,
    )


@router.post("/projections/{name}/rebuild", status_code=202, responses=NOT_FOUND)
async def start_rebuild(name: str, ports: Ports, _: Admin) -> dict[str, str]:
    """Start a blue/green rebuild on a worker; follow it at /api/v1/ops/jobs/{job_id}."""
    if name not in PROJECTION_NAMES:
        raise HTTPException(404, detail=f"unknown projection {name!r}")
    return await _enqueue(ports, "rebuild", REBUILD_ACTOR, name)


@router.post("/streams/{stream_id}/replay", status_code=202, responses=NOT_FOUND)
async def start_replay(stream_id: UUID, ports: Ports, _: Admin) -> dict[str, str]:
    """Re-project one stream on a worker; follow it at /api/v1/ops/jobs/{job_id}."""
    if not await ports.side.store.read_stream(stream_id, 1, 1):
        raise HTTPException(404, detail=f"stream {stream_id} not found")
    return await _enqueue(ports, "replay", REPLAY_ACTOR, str(stream_id))


@router.get("/jobs/{job_id}", responses=NOT_FOUND)
async def job(
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], ports: Ports, _: Admin
) -> JSONResponse:
    """A job's status and progress (done, total, rate, ETA)."""
    found = await ports.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, detail=f"job {job_id} not found")
    found["job_id"] = found.pop("_id")
    return JSONResponse(content=_plain(found))


@router.get("/jobs", responses=ADMIN_ERRORS)
async def list_jobs(
    ports: Ports, _: Admin, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> JSONResponse:
    """The newest jobs first, with their status and progress (the console's history)."""
    found = await ports.jobs.recent(limit)
    for doc in found:
        doc["job_id"] = doc.pop("_id")
    return JSONResponse(content=_plain({"jobs": found}))


@router.get("/parked", responses={**ADMIN_ERRORS, **error_responses(e404="No such subscriber")})
async def list_parked(
    ports: Ports,
    _: Admin,
    subscriber: str | None = None,
    skipped: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Parked events per subscriber, oldest first (and skipped ones, when asked)."""
    names = [_subscriber(subscriber)] if subscriber else list(SUBSCRIBER_NAMES)
    parked, found = ParkedEvents(ports.side.db), {}
    for name in names:
        events = await parked.list(name, limit)
        if skipped:
            events += (await parked.skipped(name))[:limit]
        found[name] = {"waiting": await parked.count(name), "events": events}
    return JSONResponse(content=_plain({"subscribers": found}))


@router.post(
    "/parked/{subscriber}/retry",
    status_code=202,
    responses={**ADMIN_ERRORS, **error_responses(e404="No such subscriber")},
)
async def retry_parked_events(subscriber: str, ports: Ports, _: Admin) -> dict[str, str]:
    """Apply a subscriber's parked events again (after a fix), on a worker: the job's result is
    {retried, fixed, still_failing}. A worker, because retrying refolds documents with the
    projection's own code, which the command API does not carry."""
    name = _subscriber(subscriber)
    return await _enqueue(ports, "retry", RETRY_ACTOR, name)


class SkipRequest(BaseModel):
    """Which parked event to give up on, and why."""

    model_config = ConfigDict(extra="forbid")

    position: str = Field(pattern=r"^[0-9a-f]{32}$", description="The parked event's position")
    reason: str = Field("", max_length=500)


@router.post(
    "/parked/{subscriber}/skip",
    responses={**ADMIN_ERRORS, **error_responses(e404="No such subscriber or parked event")},
)
async def skip_parked_event(
    subscriber: str, body: SkipRequest, ports: Ports, who: Admin
) -> dict[str, object]:
    """Give up on one parked event for good (kept as skipped; audits stop calling it a hole)."""
    name = _subscriber(subscriber)
    if not await ParkedEvents(ports.side.db).skip(name, body.position, who.subject, body.reason):
        raise HTTPException(404, detail=f"{name} has no parked event waiting at {body.position}")
    return {"subscriber": name, "position": body.position, "skipped": True}


@router.get("/streams", responses=ADMIN_ERRORS)
async def streams_by_sku(
    ports: Ports, _: Admin, sku: Annotated[str, Query(min_length=1, max_length=64)]
) -> dict[str, object]:
    """The streams of a SKU: its product and its stock item, those that exist."""
    candidates = {product_id(sku): "Product", stock_item_id(sku): "StockItem"}
    known = await ports.side.inspector.known_streams(candidates)
    streams = [
        {"stream_id": str(sid), "stream_type": kind}
        for sid, kind in candidates.items()
        if sid in known
    ]
    return {"sku": sku, "streams": streams}


@router.get("/audit", responses=ADMIN_ERRORS)
async def audit_entries(
    ports: Ports,
    _: Admin,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    """The audit log, newest first, filtered by actor, event type and correlation id (each
    filter has its index)."""
    query = {
        field: value
        for field, value in (("actor", actor), ("type", type), ("correlation_id", correlation_id))
        if value
    }
    names = (await Aliases(ports.side.db).live("audit_log"))[1]
    collection = ports.side.db[names["audit_log"]]
    entries = [doc async for doc in collection.find(query).sort("_id", -1).limit(limit)]
    for entry in entries:
        entry.pop("_id", None)
    return JSONResponse(content=_plain({"entries": entries}))


def _subscriber(name: str) -> str:
    if name not in SUBSCRIBER_NAMES:
        raise HTTPException(404, detail=f"unknown subscriber {name!r}")
    return name


async def _enqueue(ports: OpsPorts, kind: str, actor: str, target: str) -> dict[str, str]:
    jobs = ports.jobs
    job_id = await jobs.create(kind, target)
    try:
        await ports.enqueue(job_message(actor, job_id, target))
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
    body = error_body("read models unavailable", "unavailable")
    return JSONResponse(body, 503, {"Retry-After": "1"})


async def refresh_lag_gauges(ports: OpsPorts) -> None:
    """Projection lag and parked counts, as `status` sees them, into the Prometheus gauges."""
    report = await gather_status(ports.side, stalled_after=ports.stalled_after)
    for name, sub in report["subscribers"].items():
        PROJECTION_LAG_EVENTS.labels(name).set(sub["lag_events"])
        PROJECTION_LAG_SECONDS.labels(name).set(sub["lag_seconds"])
        PARKED_EVENTS.labels(name).set(sub["parked"])
        SUBSCRIBER_UP.labels(name).set(1 if sub["state"] == "running" else 0)


def mount(app: FastAPI, metrics_refresh_seconds: float) -> None:
    """Add the ops routes to `app`; they use the `OpsPorts` its lifespan puts in `app.state.ops`.

    The lag gauges are refreshed, at most every `metrics_refresh_seconds`, when metrics are read.
    """
    app.state.refresh_metrics = CachedRefresh(
        lambda: refresh_lag_gauges(app.state.ops), metrics_refresh_seconds
    )
    app.include_router(openapi.document(router))
    app.add_exception_handler(PyMongoError, read_models_unavailable)


def enqueuer(send: Callable[[Message[Any]], object]) -> Callable[[Message[Any]], Awaitable[None]]:
    """An async enqueue over a blocking broker's `enqueue` (run in a thread)."""

    async def enqueue(message: Message[Any]) -> None:
        await asyncio.to_thread(send, message)

    return enqueue
