"""dramatiq entry point: `dramatiq workers.actors` runs a worker process.

Each worker process runs the subscription service in a thread of its own (an asyncio loop),
started after the worker boots and stopped before it shuts down. The actors carry small
messages only (ids and tokens, never events) and just wake the service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from core import heap, tracing
from core.logging import configure_logging
from core.settings import Settings, get_settings
from core.supervisor import Supervisor
from messaging import (
    APPENDED_ACTOR,
    QUEUE,
    REBUILD_ACTOR,
    REPLAY_ACTOR,
    RETRY_ACTOR,
    create_broker,
)
from subscriptions.ports import ReadSide
from workers.bootstrap import read_side, repository, subscription_service, worker_name
from workers.health import HealthServer
from workers.runtime import rebuild_job, replay_job, retry_job

log = logging.getLogger(__name__)
SERVICE_TASK = "subscription-service"
Job = Callable[[ReadSide, str, str, str], Awaitable[None]]


class SubscriptionMiddleware(dramatiq.Middleware):
    """Runs the subscription service beside dramatiq's consumer threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = subscription_service(settings)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._outer: Supervisor | None = None
        self._health = HealthServer(settings.worker_metrics_port, self.health)

    def health(self) -> dict[str, Any]:
        """This worker's health: its subscription service's, and whether that is running."""
        report = self.service.health()
        outer = self._outer.tasks.get(SERVICE_TASK) if self._outer is not None else None
        if outer is not None and outer.failing:
            report.update(healthy=False, reason=f"subscription service: {outer.last_error}")
        if self._thread is None or not self._thread.is_alive():
            report.update(healthy=False, reason="subscription service not running")
        return report

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Start the service thread (and the health endpoint, if a port is set)."""
        if self.settings.worker_metrics_port:
            self._health.start()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="subscriptions")
        self._thread.start()
        ready.wait(10)
        heap.settle()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Stop the service (it releases its leases) and wait for it."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
        self._health.stop()

    def _main(self, ready: threading.Event) -> None:
        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            stop = self._stop
            ready.set()
            # The service supervises its own tasks; this restarts the service itself should it
            # fail to start (a store unreachable at boot, a bad setting) or ever end.
            self._outer = Supervisor(stop)
            self._outer.start(SERVICE_TASK, lambda _: self.service.run(stop))
            await self._outer.join()

        asyncio.run(serve())


# Settings are read once, here: everything below is given what it needs.
SETTINGS = get_settings()
configure_logging(SETTINGS.log_level, SETTINGS.log_style)
# Before any client exists: PyMongo reads its command listeners when a client is made.
tracing.configure_tracing("ordertrail-worker")
subscriptions = SubscriptionMiddleware(SETTINGS)
broker = create_broker(SETTINGS.redis_url)
broker.add_middleware(subscriptions)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=APPENDED_ACTOR, queue_name=QUEUE, max_retries=0)
def appended(token: str) -> None:
    """Events were appended up to `token`: wake the subscribers now rather than at the tick."""
    subscriptions.service.wake()


async def run_job(job: Job, job_id: str, target: str) -> None:
    """Open the stores, run one ops job on them as this worker, close them."""
    async with read_side(SETTINGS, "ordertrail-job") as side:
        await job(side, worker_name(SETTINGS), job_id, target)


# A rebuild of a large store takes a while; its progress is in the job document meanwhile.
JOB_TIME_LIMIT_MS = 6 * 3600 * 1000


@dramatiq.actor(
    actor_name=REBUILD_ACTOR, queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS
)
def rebuild_projection(job_id: str, projection: str) -> None:
    """Rebuild a projection blue/green (job `job_id`)."""
    asyncio.run(run_job(rebuild_job, job_id, projection))


@dramatiq.actor(
    actor_name=REPLAY_ACTOR, queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS
)
def replay_stream(job_id: str, stream_id: str) -> None:
    """Re-project one stream (job `job_id`)."""
    asyncio.run(run_job(replay_job, job_id, stream_id))


@dramatiq.actor(
    actor_name=RETRY_ACTOR, queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS
)
def retry_parked_events(job_id: str, subscriber: str) -> None:
    """Apply a subscriber's parked events again (job `job_id`)."""

    async def job(side: ReadSide, worker: str, job_id: str, target: str) -> None:
        await retry_job(side, worker, job_id, target, repository(side.store, SETTINGS))

    asyncio.run(run_job(job, job_id, subscriber))
