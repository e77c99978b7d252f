"""Prometheus metrics of this process."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
COMMANDS = Counter("ordertrail_commands_total", "Commands handled", ["command", "outcome"])
APPEND_SECONDS = Histogram(
    "ordertrail_append_duration_seconds",
    "Event store append latency",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
EVENTS_APPENDED = Counter("ordertrail_events_appended_total", "Events appended", ["stream_type"])
COMMAND_RETRIES = Counter(
    "ordertrail_command_retries_total",
    "Commands re-run because another writer appended to their stream first",
    ["stream_type"],
)
FAST_PATH = Counter(
    "ordertrail_command_fast_path_total",
    "Command requests the fast path served, or deferred to FastAPI's dispatch",
    ["outcome"],
)

FEED_CLIENTS = Gauge(
    "ordertrail_feed_clients", "Feed clients waiting now (long-polls and streams)", ["kind"]
)
FEED_EVENTS = Counter("ordertrail_feed_events_total", "Events the feed served", ["kind"])
FEED_STREAMS_ENDED = Counter(
    "ordertrail_feed_streams_ended_total", "Feed streams that ended, by why", ["reason"]
)
LIVE_CLIENTS = Gauge("ordertrail_live_clients", "Live read-model streams open now")
LIVE_STREAMS_ENDED = Counter(
    "ordertrail_live_streams_ended_total", "Live read-model streams that ended, by why", ["reason"]
)
FEED_REFUSED = Counter(
    "ordertrail_feed_refused_total", "Feed clients refused: the process had its maximum"
)


@functools.lru_cache(maxsize=1024)
def labelled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, remembered: the lookup takes a lock on every call."""
    return metric.labels(*values)


SNAPSHOTS = Counter(
    "ordertrail_snapshots_total",
    "Aggregate snapshots written, skipped (too many writes in flight) or failed",
    ["outcome"],
)


def count_snapshot(outcome: str) -> None:
    """One snapshot written, skipped or failed."""
    labelled(SNAPSHOTS, outcome).inc()


def count_retry(stream_type: str) -> None:
    """One command re-run after a lost race on a stream of `stream_type`."""
    labelled(COMMAND_RETRIES, stream_type).inc()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


HTTP_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template, method and status (event streams excluded)",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
# A path no route matched is labelled so: raw paths would let any client mint label values.
UNMATCHED = "unmatched"


class HttpMetrics:
    """Times every HTTP request into http_request_duration_seconds (pure ASGI, a few µs).

    The route is the matched template (`/api/v1/orders/{order_id}`), never the raw path. An
    event stream (text/event-stream) is not timed: its length is the client's choice, not
    latency; the feed and live metrics count streams.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, answered = time.perf_counter(), {"status": 500, "stream": False}

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-type" and value.startswith(b"text/event-stream"):
                        answered["stream"] = True
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            if not answered["stream"]:
                route = getattr(scope.get("route"), "path", UNMATCHED)
                status = str(answered["status"])
                labelled(HTTP_SECONDS, route, scope["method"], status).observe(
                    time.perf_counter() - started
                )


PROJECTION_LAG_EVENTS = Gauge(
    "ordertrail_projection_lag_events",
    "Committed events a subscriber has not read yet",
    ["projection"],
)
PROJECTION_LAG_SECONDS = Gauge(
    "ordertrail_projection_lag_seconds",
    "Age of the oldest event a subscriber has not read yet",
    ["projection"],
)
PARKED_EVENTS = Gauge("ordertrail_parked_events", "Events a subscriber parked", ["projection"])
BATCH_EVENTS = Histogram(
    "ordertrail_projection_batch_events",
    "Events per catch-up batch",
    ["projection"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
)
BATCH_SECONDS = Histogram(
    "ordertrail_projection_batch_duration_seconds",
    "Time to apply one catch-up batch",
    ["projection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SUBSCRIBER_UP = Gauge(
    "ordertrail_subscriber_up",
    "1 while this worker owns the subscriber and its last step succeeded, else 0",
    ["subscriber"],
)
SUBSCRIBER_FAILURES = Counter(
    "ordertrail_subscriber_failures_total",
    "Subscriber failures: an event that failed (event), an outage (infrastructure), a bug",
    ["subscriber", "kind"],
)

IDEMPOTENCY_PURGED = Counter(
    "ordertrail_idempotency_records_purged_total",
    "Expired idempotency records a worker deleted",
)


GAUGE_REFRESH_FAILURES = Counter(
    "ordertrail_gauge_refresh_failures_total",
    "Refreshes of query-backed gauges (lag, parked) that failed; the last values were served",
)


class CachedRefresh:
    """Refreshes query-backed gauges at most once per `interval` seconds, one run at a time.

    Scrapes are unauthenticated and may come often and together: each computing lag (a count
    per subscriber, a pg_stat_activity read) would let them load the store at will. A scrape
    while a refresh runs, or within `interval` of the last, serves the gauges as they are; a
    refresh that fails or times out is logged and counted, and the scrape serves the last values.
    """

    def __init__(
        self, refresh: Callable[[], Awaitable[None]], interval: float, timeout: float = 5.0
    ) -> None:
        self.refresh, self.interval, self.timeout = refresh, interval, timeout
        self._due = float("-inf")  # monotonic time from which the next refresh may run
        self._running = False  # a flag, not an asyncio.Lock: scrapes skip rather than queue

    async def __call__(self) -> None:
        """Refresh the gauges if the last refresh is older than the interval and none runs."""
        if self._running or time.monotonic() < self._due:
            return
        self._running = True
        try:
            await asyncio.wait_for(self.refresh(), self.timeout)
        except Exception as exc:  # stale gauges beat a failed scrape
            GAUGE_REFRESH_FAILURES.inc()
            log.warning("gauge refresh failed: %r", exc)
        finally:
            self._running, self._due = False, time.monotonic() + self.interval
