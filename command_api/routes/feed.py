"""`GET /api/v1/feed`: every committed event in commit order, as pages or Server-Sent Events."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from command_api.feed import Feed, FeedPage, FeedQuery, page_body, sse_events
from command_api.feed_schemas import FeedPageResponse
from core.auth import Principal
from core.errors import ApiError, error_responses
from core.http import require_scope
from core.metrics import FEED_EVENTS, FEED_REFUSED, FEED_STREAMS_ENDED, labelled
from core.sse import MEDIA_TYPE, EventStream, comment
from eventstore.positions import InvalidPosition, Position

router = APIRouter(prefix="/api/v1", tags=["feed"])
Reader = Annotated[Principal, Depends(require_scope("events:read", "ops:admin"))]
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
MAX_NAMES = 50
RETRY_MS = 1000  # how long an SSE client waits before reconnecting

SSE_DOC = (
    "With `Accept: text/event-stream`: one event per stored event, `id:` its position token, "
    "`event:` its type, `data:` the event as JSON; `: heartbeat` comments when idle; a last "
    '`event: end` with `{"reason"}` when the server ends the stream. Reconnect with '
    "`Last-Event-ID` to resume after the last event received."
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": FeedPageResponse,
        "description": "A page of events, or (`Accept: text/event-stream`) a stream of them",
        "content": {MEDIA_TYPE: {"schema": {"type": "string", "description": SSE_DOC}}},
    },
    **error_responses(
        e401="Missing, invalid or expired token",
        e403="Token lacks the events:read scope (ops:admin implies it)",
        e503="Event store unavailable, or the process has its maximum of waiting feed clients",
    ),
    422: {"description": "A malformed position token, filter or limit"},
}


def _names(raw: str | None, what: str) -> frozenset[str] | None:
    """A comma-separated filter: event or stream type names."""
    if raw is None or not raw.strip():
        return None
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    bad = sorted(n for n in names if not NAME.match(n))[:3]
    if bad or len(names) > MAX_NAMES:
        detail = f"{what}: at most {MAX_NAMES} comma-separated names like OrderPlaced"
        raise HTTPException(422, detail=detail + (f"; not names: {bad}" if bad else ""))
    return names


def _position(token: str | None, where: str) -> Position | None:
    if token is None or token == "":
        return None
    try:
        return Position.parse(token)
    except InvalidPosition:
        raise HTTPException(422, detail=f"{where}: not a position token") from None


def _feed(request: Request) -> Feed:
    feed: Feed = request.app.state.feed
    return feed


@router.get("/feed", responses=RESPONSES, response_class=JSONResponse)
async def read_feed(
    request: Request,
    _: Reader,
    after: Annotated[str | None, Query(description="Position token: events after it")] = None,
    types: Annotated[str | None, Query(description="Event types, comma-separated")] = None,
    stream_types: Annotated[
        str | None, Query(description="Stream types (Product, StockItem, Order), comma-separated")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for an event")] = 0,
) -> Response:
    """Committed events after `after`, in commit order, gap-free, with the token to go on from.

    Answers `{"events": [...], "next"}`; pass `next` as `after` for the following page (it moves
    on past events the filters skipped). `wait` long-polls until an event commits. With
    `Accept: text/event-stream` the answer is a stream of Server-Sent Events instead, resumed
    after the `Last-Event-ID` header's token when the client reconnects.
    """
    feed = _feed(request)
    accept, last_event_id = request.headers.get("accept"), request.headers.get("last-event-id")
    wait = min(wait, request.app.state.settings.feed_max_wait_seconds)
    query = FeedQuery(
        _position(after, "after"),
        _names(types, "types"),
        _names(stream_types, "stream_types"),
        limit,
    )
    if accept is not None and MEDIA_TYPE in accept:
        resumed = _position(last_event_id, "Last-Event-ID")
        return await _stream(feed, replace(query, after=resumed or query.after), request)
    if wait <= 0:
        page = await feed.page(query)
    else:
        if not feed.admit("poll"):
            raise _full(feed)
        try:
            page = await feed.wait_page(query, wait)
        finally:
            feed.leave("poll")
    labelled(FEED_EVENTS, "poll").inc(len(page.events))
    return Response(page_body(page), media_type="application/json")


def _full(feed: Feed) -> HTTPException:
    FEED_REFUSED.inc()
    detail = f"the feed has its maximum of {feed.max_clients} waiting clients; retry shortly"
    return ApiError(503, detail, "too_many_clients", headers={"Retry-After": "5"})


async def _stream(feed: Feed, query: FeedQuery, request: Request) -> Response:
    """The SSE answer; its first page is read before the headers go, so an outage is a 503."""
    settings = request.app.state.settings
    first = await feed.page(query)
    if not feed.admit("stream"):
        raise _full(feed)

    def ended(reason: str) -> None:
        feed.leave("stream")
        labelled(FEED_STREAMS_ENDED, reason).inc()

    chunks = _events(feed, query, first, settings.sse_heartbeat_seconds)
    timeout, lifetime = settings.sse_send_timeout_seconds, settings.sse_max_seconds
    return EventStream(chunks, timeout, on_end=ended, max_seconds=lifetime)


async def _events(
    feed: Feed, query: FeedQuery, page: FeedPage, heartbeat: float
) -> AsyncIterator[bytes]:
    """The stream's chunks: events as they commit, a heartbeat comment when idle."""
    yield b"retry: %d\n\n" % RETRY_MS
    beat = time.monotonic()
    while True:
        if page.next is not None:
            query = replace(query, after=page.next)
        if page.events:
            labelled(FEED_EVENTS, "stream").inc(len(page.events))
            yield sse_events(page.events)
            beat = time.monotonic()
        elif time.monotonic() >= beat + heartbeat:
            yield comment("heartbeat")
            beat = time.monotonic()
        page = await feed.wait_page(query, max(0.0, beat + heartbeat - time.monotonic()))
