"""Prometheus metrics of this process."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

COMMANDS = Counter("ordertrail_commands_total", "Commands handled", ["command", "outcome"])
APPEND_SECONDS = Histogram(
    "ordertrail_append_seconds",
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


@functools.lru_cache(maxsize=1024)
def labelled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, remembered: the lookup takes a lock on every call."""
    return metric.labels(*values)


def count_retry(stream_type: str) -> None:
    """One command re-run after a lost race on a stream of `stream_type`."""
    labelled(COMMAND_RETRIES, stream_type).inc()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


QUERY_SECONDS = Histogram(
    "ordertrail_query_seconds",
    "Query API latency by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
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
    "ordertrail_projection_batch_seconds",
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
