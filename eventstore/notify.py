"""Wake subscribers after commits, coalesced and off the commit path.

NOTIFY inside the append transaction would take PostgreSQL's global notify lock during commit,
serialising every writer's commit (and its WAL flush). Instead one background task per signal
sends the newest position after commits: a burst of appends costs one message, and a steady
stream of them at most one message per `min_interval` (the first after a quiet spell goes at
once, so an idle system wakes its subscribers without delay). A lost signal only delays
subscribers until their periodic tick, so failures are logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from eventstore.positions import Position
from eventstore.postgres import AppendListener, PostgresEventStore
from eventstore.records import StreamAppend

CHANNEL = "ordertrail_events"
log = logging.getLogger(__name__)

Sender = Callable[[Position], Awaitable[None]]


class Coalescer:
    """Calls `send(newest position)` in the background after `signal`s, one call in flight.

    Calls start at least `min_interval` seconds apart: under load, one message per command
    would cost the API more CPU than the command itself, and wake every subscriber each time.
    """

    def __init__(self, send: Sender, name: str, min_interval: float = 0.0) -> None:
        self._send, self.name, self.min_interval = send, name, min_interval
        self._latest: Position | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned_at = -60.0

    def signal(self, position: Position) -> None:
        """Note a committed append; the background task sends soon."""
        if self._latest is None or position > self._latest:
            self._latest = position
        self._wake.set()

    def start(self) -> None:
        """Start the background task (inside a running event loop)."""
        self._task = asyncio.create_task(self._run(), name=f"ordertrail-{self.name}")

    async def stop(self) -> None:
        """Stop the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._latest is None:
                continue
            started = time.monotonic()
            try:
                await self._send(self._latest)
            except Exception as exc:
                self._warn(exc)
            # Signals arriving meanwhile set the event again: they go out in the next call.
            await asyncio.sleep(max(0.0, self.min_interval - (time.monotonic() - started)))

    def _warn(self, exc: Exception) -> None:
        # A store that is down fails every burst: say so once a minute, not once a command.
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("%s signal failed (the periodic tick covers it): %s", self.name, exc)


# Subscribers wake at most this often from NOTIFY under load: 10 ms is well inside the
# freshness budget, and batches a steady 200 commands/s into about two events per wake-up.
NOTIFY_INTERVAL = 0.01


def postgres_notifier(
    store: PostgresEventStore, channel: str = CHANNEL, min_interval: float = NOTIFY_INTERVAL
) -> Coalescer:
    """Sends `NOTIFY ordertrail_events, '<token>'` after appends."""

    async def send(position: Position) -> None:
        await store.notify(channel, position.token)

    return Coalescer(send, "notify", min_interval)


def forward_to(signal: Coalescer) -> AppendListener:
    """An append listener that passes the newest position on to `signal`."""

    def listener(_: Sequence[StreamAppend], last: Position, __: float) -> None:
        signal.signal(last)

    return listener
