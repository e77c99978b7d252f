"""A LISTEN connection that wakes its owner on every NOTIFY of an append (workers, the feed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from sqlalchemy.engine import make_url

from eventstore.notify import CHANNEL

log = logging.getLogger(__name__)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """A plain libpq URL for asyncpg from the SQLAlchemy one."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Return when any event is set or the timeout passes."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Health(Protocol):
    """What the listener tells its supervisor (core.supervisor.TaskHealth is one)."""

    def ok(self) -> bool:
        """Record progress; True if this ends a run of failures."""
        ...


LISTENER_NAME = "ordertrail-listener"
LISTENER_TASK = "listener"
LISTENER_CHECK_SECONDS = 1.0


@dataclass
class Listener:
    """LISTEN for appends on a connection of its own; under supervision, reconnects when lost.

    Without a connection the tick alone drives the subscribers; a listener that never came back
    after a PostgreSQL restart would leave every projection a tick behind for good.
    """

    dsn: str  # asyncpg's form (see `asyncpg_dsn`)
    connect_timeout: float
    wake: Callable[[], None]
    stop: asyncio.Event
    application_name: str = LISTENER_NAME  # how the connection shows in pg_stat_activity
    heard: Callable[[str], None] | None = None  # told each NOTIFY's payload (a position token)

    async def run(self, health: Health) -> None:
        """Listen until stopped; a lost connection raises (the supervisor reconnects)."""
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            server_settings={"application_name": self.application_name},
        )
        try:
            await conn.add_listener(CHANNEL, self._notified)
            if health.ok():
                log.info("LISTEN connection restored")
            self.wake()  # notifications sent while we were away are lost: look now
            while not self.stop.is_set():
                await wait_any(self.stop, seconds=LISTENER_CHECK_SECONDS)
                # An idle connection does not notice a server restart until it is used.
                await conn.fetchval("SELECT 1", timeout=self.connect_timeout)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    def _notified(self, _: object, __: int, ___: str, payload: object) -> None:
        if self.heard is not None:
            self.heard(str(payload))
        self.wake()
