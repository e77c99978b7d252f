"""dramatiq entry point: `dramatiq workers.actors` runs a worker process.

Each worker process runs the subscription service in a thread of its own (an asyncio loop),
started after the worker boots and stopped before it shuts down. The actors carry small
messages only (ids and tokens, never events) and just wake the service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import dramatiq

from core import heap
from core.logging import configure_logging
from core.settings import get_settings
from core.signals import APPENDED_ACTOR, QUEUE, REBUILD_ACTOR, REPLAY_ACTOR, create_broker
from core.supervisor import Supervisor
from workers.health import HealthServer
from workers.runtime import rebuild_job, replay_job
from workers.service import SubscriptionService

log = logging.getLogger(__name__)
SERVICE_TASK = "subscription-service"


class SubscriptionMiddleware(dramatiq.Middleware):
    """Runs the subscription service beside dramatiq's consumer threads."""

    def __init__(self) -> None:
        self.service = SubscriptionService(get_settings())
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._outer: Supervisor | None = None
        self._health = HealthServer(get_settings().worker_metrics_port, self.health)

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
        if get_settings().worker_metrics_port:
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


configure_logging(get_settings().log_level)
subscriptions = SubscriptionMiddleware()
broker = create_broker(get_settings())
broker.add_middleware(subscriptions)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=APPENDED_ACTOR, queue_name=QUEUE, max_retries=0)
def appended(token: str) -> None:
    """Events were appended up to `token`: wake the subscribers now rather than at the tick."""
    subscriptions.service.wake()


# A rebuild of a large store takes a while; its progress is in the job document meanwhile.
JOB_TIME_LIMIT_MS = 6 * 3600 * 1000


@dramatiq.actor(
    actor_name=REBUILD_ACTOR, queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS
)
def rebuild_projection(job_id: str, projection: str) -> None:
    """Rebuild a projection blue/green (job `job_id`)."""
    asyncio.run(rebuild_job(get_settings(), job_id, projection))


@dramatiq.actor(
    actor_name=REPLAY_ACTOR, queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS
)
def replay_stream(job_id: str, stream_id: str) -> None:
    """Re-project one stream (job `job_id`)."""
    asyncio.run(replay_job(get_settings(), job_id, stream_id))
