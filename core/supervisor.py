"""Supervision: a long-running task is never left dead while its process lives.

In the manner of an Erlang/OTP supervisor, each task runs under `Supervisor.start`, which awaits
it, catches *any* exception at its edge (not a hand-kept list of types), logs it once with its
traceback, records it on the task's `TaskHealth` and in a metric, tells a listener, and starts the
task again after a capped, jittered exponential backoff. A task that returns while its process is
not stopping is restarted too: ending by itself is a failure for a long-running task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from prometheus_client import Counter
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError
from sqlalchemy.exc import DBAPIError

from core.retry import Backoff

log = logging.getLogger(__name__)

Kind = Literal["infrastructure", "unexpected"]

TASK_FAILURES = Counter(
    "ordertrail_task_failures_total",
    "Failures of supervised long-running tasks, each followed by a restart",
    ["task", "kind"],
)

# A store or server that cannot be reached, or dropped us: waited out, never the data's fault.
_INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    ConnectionFailure,  # pymongo: AutoReconnect, NetworkTimeout, server selection, not primary
    ExecutionTimeout,
    WTimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


def kind_of(error: BaseException) -> Kind:
    """Whether `error` means a dependency is unreachable, or something else went wrong.

    Errors of the project's own layers say so with a class attribute `infrastructure = True`
    (the event store's StoreUnavailable does), so this module need not import them.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _INFRASTRUCTURE) or getattr(current, "infrastructure", False):
            return "infrastructure"
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return "infrastructure"
        current = current.__cause__
    return "unexpected"


def describe(error: BaseException) -> str:
    """One line naming an error: its type and message."""
    return f"{type(error).__name__}: {error}"


@dataclass
class TaskHealth:
    """How one supervised task is doing: consecutive failures and the latest error."""

    name: str
    attempts: int = 0
    failing_since: datetime | None = None
    last_error: str | None = None
    last_kind: Kind | None = None
    restarts: int = 0
    _logged: str | None = field(default=None, repr=False)

    @property
    def failing(self) -> bool:
        """Whether the task's latest attempt failed and none has succeeded since."""
        return self.failing_since is not None

    def failing_for(self, now: datetime | None = None) -> float:
        """Seconds since the current run of failures began (0 if healthy)."""
        if self.failing_since is None:
            return 0.0
        return ((now or datetime.now(UTC)) - self.failing_since).total_seconds()

    def failed(self, error: BaseException, kind: Kind) -> None:
        """Record a failure (the first of a run of failures sets `failing_since`)."""
        self.attempts += 1
        self.failing_since = self.failing_since or datetime.now(UTC)
        self.last_error, self.last_kind = describe(error), kind

    def ok(self) -> bool:
        """Record progress; True if this ends a run of failures."""
        if self.failing_since is None:
            return False
        self.attempts, self.failing_since, self._logged = 0, None, None
        return True

    def snapshot(self) -> dict[str, object]:
        """Plain data for health endpoints and status."""
        return {
            "state": "failing" if self.failing else "running",
            "attempts": self.attempts,
            "failing_since": self.failing_since,
            "failing_seconds": round(self.failing_for(), 3),
            "last_error": self.last_error,
            "last_kind": self.last_kind,
            "restarts": self.restarts,
        }


# Told of each failure after it is recorded and before the backoff (e.g. to store it).
FailureListener = Callable[[TaskHealth, BaseException], Awaitable[None]]
Work = Callable[[TaskHealth], Awaitable[None]]


@dataclass
class Supervisor:
    """Owns long-running tasks and restarts any that fail or end, until `stop` is set."""

    stop: asyncio.Event
    base_delay: float = 0.2
    max_delay: float = 30.0
    # An outage is retried sooner than a bug: when the store comes back, the read side should
    # follow within seconds, not after a backoff grown for an error that keeps recurring.
    max_infrastructure_delay: float = 5.0
    on_failure: FailureListener | None = None
    tasks: dict[str, TaskHealth] = field(default_factory=dict)
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, name: str, work: Work) -> asyncio.Task[None]:
        """Run `work(health)` under supervision as task `name`."""
        health = self.tasks.setdefault(name, TaskHealth(name))
        task = asyncio.create_task(self._supervise(health, work), name=name)
        self._running[name] = task
        return task

    async def join(self) -> None:
        """Wait for every task to end (they end once `stop` is set)."""
        await asyncio.gather(*self._running.values())

    def unhealthy(self, longer_than: float) -> list[TaskHealth]:
        """Tasks that have been failing for more than `longer_than` seconds."""
        now = datetime.now(UTC)
        return [h for h in self.tasks.values() if h.failing and h.failing_for(now) > longer_than]

    def delay(self, health: TaskHealth) -> float:
        """The backoff before the next attempt: doubling per failure, capped, jittered."""
        cap = self.max_delay
        if health.last_kind == "infrastructure":
            cap = min(cap, self.max_infrastructure_delay)
        return Backoff(self.base_delay, cap, jitter=0.5).delay(health.attempts)

    async def _supervise(self, health: TaskHealth, work: Work) -> None:
        while not self.stop.is_set():
            try:
                await work(health)
                if self.stop.is_set():
                    return
                raise TaskEnded(f"task {health.name} returned while its process runs")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self._failed(health, error)
            await _sleep_unless(self.stop, self.delay(health))
            health.restarts += 1

    async def _failed(self, health: TaskHealth, error: Exception) -> None:
        kind = kind_of(error)
        health.failed(error, kind)
        TASK_FAILURES.labels(health.name, kind).inc()
        if health._logged != health.last_error:  # once per distinct error, with its traceback
            health._logged = health.last_error
            log.error(
                "%s failed (%s), restarting: %s",
                health.name,
                kind,
                health.last_error,
                exc_info=error,
            )
        elif health.attempts & (health.attempts - 1) == 0:  # then now and then, briefly
            log.warning(
                "%s still failing after %d attempts: %s",
                health.name,
                health.attempts,
                health.last_error,
            )
        if self.on_failure is not None:
            try:
                await asyncio.wait_for(self.on_failure(health, error), 5)
            except Exception as exc:  # the store that records failures may be what failed
                log.debug("%s: failure not recorded: %s", health.name, exc)


class TaskEnded(RuntimeError):
    """A long-running task returned although its process was not stopping."""


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
