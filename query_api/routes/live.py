"""Live read models as Server-Sent Events: the current answer, then each change of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from core.errors import ApiError, ErrorResponse
from core.metrics import LIVE_STREAMS_ENDED, labelled
from core.sse import MEDIA_TYPE, EventStream, StreamEnded, comment
from query_api.deps import MAX_PAGE_SIZE, Reader, ReadModels
from query_api.freshness import TOKEN
from query_api.live import Listener, LiveHub, Topic
from query_api.routes.common import ERRORS
from query_api.routes.dashboards import Days, SkuLimit, order_status, sales_daily
from query_api.routes.orders import order_response
from query_api.routes.products import SkuPath, canonical_sku, product_response
from query_api.routes.stock import stock_response

router = APIRouter(prefix="/api/v1/live", tags=["live"])
RETRY_MS = 1000
SSE_DOC = (
    "Server-Sent Events: the current answer first, as the matching GET route gives it (`null` "
    "for a document that does not exist yet), then the new answer each time the projections "
    "change it. `id:` is the position the answer includes; reconnect with `Last-Event-ID` to "
    "get only changes after it. `: heartbeat` comments when idle; a last `event: end` with "
    '`{"reason"}` when the server ends the stream (a slow consumer, an outage).'
)
ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def _as_json(described: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """Error answers with their JSON content spelt out (else they take the stream's type)."""
    return {
        code: {"description": spec["description"]}
        | ({"content": ERROR_JSON} if "model" in spec else {})
        for code, spec in described.items()
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A stream of the answer as it changes",
        "content": {MEDIA_TYPE: {"schema": {"type": "string", "description": SSE_DOC}}},
    },
    **_as_json(ERRORS),
    **_as_json(
        {
            406: {"model": ErrorResponse, "description": "Accept does not name text/event-stream"},
            503: {"model": ErrorResponse, "description": "Read models down, or too many streams"},
        }
    ),
}


def _json(model: BaseModel | None, **options: Any) -> Any:
    return None if model is None else model.model_dump(mode="json", **options)


def _rendered(render: Any) -> Any:
    return lambda doc: None if doc is None else _json(render(doc))


async def _stream(request: Request, topic: Topic, event: str) -> EventStream:
    """Subscribe (a read before the headers go, so an outage is a 503) and stream the changes."""
    if MEDIA_TYPE not in request.headers.get("accept", ""):
        raise HTTPException(406, detail=f"a live route answers only Accept: {MEDIA_TYPE}")
    hub: LiveHub = request.app.state.live
    settings = request.app.state.settings
    if hub.listeners >= settings.live_max_clients:
        detail = f"the query API has its maximum of {settings.live_max_clients} live streams"
        raise ApiError(503, detail, "too_many_clients", headers={"Retry-After": "5"})
    resume = request.headers.get("last-event-id")
    if resume is not None and resume and not TOKEN.match(resume):
        raise HTTPException(422, detail="Last-Event-ID: not a position token")
    listener = await hub.subscribe(topic, resume or None)

    def ended(reason: str) -> None:
        hub.unsubscribe(topic, listener)
        labelled(LIVE_STREAMS_ENDED, reason).inc()

    chunks = _changes(listener, event.encode(), settings.sse_heartbeat_seconds)
    timeout, lifetime = settings.sse_send_timeout_seconds, settings.sse_max_seconds
    return EventStream(chunks, timeout, on_end=ended, max_seconds=lifetime)


async def _changes(listener: Listener, event: bytes, heartbeat: float) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % RETRY_MS
    while True:
        if listener.cut is not None:
            raise StreamEnded(listener.cut)
        try:
            position, answer = await asyncio.wait_for(listener.queue.get(), heartbeat)
        except TimeoutError:
            yield comment("heartbeat")
            continue
        data = orjson.dumps(answer)
        yield b"id: %s\nevent: %s\ndata: %s\n\n" % (position.encode(), event, data)


@router.get("/orders/{order_id}", responses=RESPONSES, response_class=EventStream)
async def live_order(order_id: UUID, request: Request, _: Reader) -> EventStream:
    """One order as its status changes (pending → confirmed → shipped …)."""
    key = str(order_id)
    render = _rendered(order_response)
    topic = Topic(f"orders/{key}", ("orders",), "orders", key, render=render)
    return await _stream(request, topic, "order")


@router.get("/stock/{sku}", responses=RESPONSES, response_class=EventStream)
async def live_stock(sku: SkuPath, request: Request, _: Reader) -> EventStream:
    """One SKU's stock levels as they change."""
    key = canonical_sku(sku)
    topic = Topic(f"stock/{key}", ("stock",), "stock", key, render=_rendered(stock_response))
    return await _stream(request, topic, "stock")


@router.get("/products/{product_id}", responses=RESPONSES, response_class=EventStream)
async def live_product(product_id: UUID, request: Request, _: Reader) -> EventStream:
    """One product (name, price, status, available stock) as it changes."""
    key, render = str(product_id), _rendered(product_response)
    topic = Topic(f"products/{key}", ("products",), "products", key, render=render)
    return await _stream(request, topic, "product")


@router.get("/dashboards/sales-daily", responses=RESPONSES, response_class=EventStream)
async def live_sales_daily(
    request: Request, _: Reader, days: Days, sku_limit: SkuLimit = MAX_PAGE_SIZE
) -> EventStream:
    """Sales per day over a date range (default the last 30 days) as orders are confirmed."""

    async def load(models: ReadModels) -> Any:
        answer = await sales_daily(models, _, days, sku_limit)
        return _json(answer, exclude_none=True)

    name = f"sales-daily/{days[0]}/{days[1]}/{sku_limit}"
    return await _stream(request, Topic(name, ("sales_daily",), load=load), "sales-daily")


@router.get("/dashboards/order-status", responses=RESPONSES, response_class=EventStream)
async def live_order_status(request: Request, _: Reader) -> EventStream:
    """How many orders are in each status, as orders move."""

    async def load(models: ReadModels) -> Any:
        return _json(await order_status(models, _))

    topic = Topic("order-status", ("orders",), load=load)
    return await _stream(request, topic, "order-status")
