"""Catch-up: read events after a subscriber's checkpoint in commit order, apply, advance.

Delivery is at-least-once (a crash between apply and checkpoint re-applies the batch); the
subscribers' own guards make the effects exactly-once. A projector failing on one event is
retried with backoff, then the event is parked and the subscriber continues without it.
Database failures are not the event's fault: they propagate and the batch is retried later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.metrics import BATCH_EVENTS, BATCH_SECONDS
from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.base import ConcurrentWrite, ProjectorError, Subscriber
from projections.checkpoints import Checkpoints, ParkedEvents

log = logging.getLogger(__name__)

# Called after each applied batch: (subscriber name, first token, last token, events in batch).
BatchListener = Callable[[str, str, str, int], None]


@dataclass
class CatchUp:
    """Brings subscribers up to the head of the event store."""

    store: EventStore
    checkpoints: Checkpoints
    parked: ParkedEvents
    batch_size: int = 500
    retries: int = 3
    backoff: float = 0.05
    on_batch: BatchListener | None = None

    async def run(
        self, subscriber: Subscriber, still_owner: Callable[[], Awaitable[bool]] | None = None
    ) -> int:
        """Apply every event after the checkpoint; returns how many events were read."""
        _, total = await self.advance(
            subscriber, await self.checkpoints.load(subscriber.name), still_owner
        )
        return total

    async def advance(
        self,
        subscriber: Subscriber,
        position: Position | None,
        still_owner: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[Position | None, int]:
        """Apply every event after `position` (the saved checkpoint); the new one, events read.

        For an owner that keeps its checkpoint in memory between wake-ups instead of reading it
        back from the read-model server each time.
        """
        total = 0
        page = asyncio.ensure_future(self.store.read_all(position, self.batch_size))
        try:
            while events := await page:
                if still_owner is not None and not await still_owner():
                    break  # lost the lease: stop before writing anything more
                # Read the next page while this one is written: PostgreSQL and the read-model
                # server work side by side instead of taking turns.
                position = events[-1].position
                page = asyncio.ensure_future(self.store.read_all(position, self.batch_size))
                relevant = [e for e in events if e.type in subscriber.handles]
                started = time.perf_counter()
                await self.apply(subscriber, relevant)
                BATCH_SECONDS.labels(subscriber.name).observe(time.perf_counter() - started)
                BATCH_EVENTS.labels(subscriber.name).observe(len(events))
                await self.checkpoints.save(subscriber.name, position, len(events))
                if self.on_batch is not None:
                    self.on_batch(subscriber.name, events[0].token, events[-1].token, len(events))
                total += len(events)
        finally:
            await _discard(page)
        return position, total

    async def apply(self, subscriber: Subscriber, events: Sequence[StoredEvent]) -> None:
        """Apply a batch, parking events whose projector keeps failing."""
        remaining, failures = list(events), 0
        while True:
            try:
                await subscriber.apply(remaining)
                return
            except ConcurrentWrite as exc:  # another writer raced us: re-read and retry
                log.warning("%s: %s", subscriber.name, exc)
            except ProjectorError as exc:
                failures += 1
                if failures > self.retries:
                    await self._park(subscriber.name, exc, failures)
                    remaining = [e for e in remaining if e.event_id != exc.event.event_id]
                    failures = 0
                    continue
                log.warning("%s failed (attempt %d): %s", subscriber.name, failures, exc)
            await asyncio.sleep(self.backoff * 2**failures)

    async def _park(self, name: str, error: ProjectorError, attempts: int) -> None:
        log.error("%s parks %s: %s", name, error.event.token, error)
        await self.parked.park(name, error.event, str(error), attempts)
        await self.checkpoints.record_error(name, str(error))


async def _discard(page: asyncio.Future[list[StoredEvent]]) -> None:
    """Cancel a read nobody will use (and collect its outcome, so nothing is left dangling)."""
    if not page.done():
        page.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await page


async def drain(catch_up: CatchUp, subscribers: Sequence[Subscriber]) -> int:
    """Catch every subscriber up until a full pass reads nothing new.

    The fulfilment process appends while it runs, so one pass is not enough to be quiet.
    """
    total = 0
    while read := sum([await catch_up.run(subscriber) for subscriber in subscribers]):
        total += read
    return total
