"""Catch-up: read events after a subscriber's checkpoint in commit order, apply, advance.

Delivery is at-least-once (a crash between apply and checkpoint re-applies the batch); the
subscribers' own guards make the effects exactly-once. An event whose effects cannot be written
(a projector raising, a document BSON cannot encode or that is too large, an overflow) is found,
retried alone with backoff, then parked, and the subscriber continues without it. An outage is
not the event's fault: it propagates, and the batch is retried from the checkpoint later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core import tracing
from core.metrics import BATCH_EVENTS, BATCH_SECONDS, SUBSCRIBER_FAILURES, labelled
from core.retry import Backoff, retry
from core.supervisor import describe, kind_of
from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent
from eventstore.repository import ConcurrencyConflict
from projections.checkpoints import Checkpoints, ParkedEvents
from subscriptions import Buffered, ConcurrentWrite, ProjectorError, Subscriber
from workers.shared_reads import SharedReads

log = logging.getLogger(__name__)

# Another writer got there first (a lost lease's batch, a command racing the fulfilment
# process): the batch is re-run, never parked, as it is nobody's fault.
RACES = (ConcurrentWrite, ConcurrencyConflict)


class Faults(Protocol):
    """Failures injected by the reliability suite (see workers.faults)."""

    def before_run(self, subscriber: str) -> None:
        """Called as a catch-up run starts."""

    def before_apply(self, subscriber: str, events: Sequence[StoredEvent]) -> None:
        """Called before each apply."""


# Called after each applied batch: (subscriber name, first token, last token, events in batch).
BatchListener = Callable[[str, str, str, int], None]


@dataclass
class _Pass:
    """One advance of a subscriber: the page being read, the checkpoint saves in flight."""

    subscriber: Subscriber
    position: Position | None
    since: int | None
    page: asyncio.Future[list[StoredEvent]]
    saves: list[asyncio.Future[None]] = field(default_factory=list)
    total: int = 0
    held: StoredEvent | None = None  # a buffered subscriber's first event not yet flushed
    tail: StoredEvent | None = None  # and its last
    flushed: int = 0  # of `total`, the events a buffered subscriber has written


@dataclass
class CatchUp:
    """Brings subscribers up to the head of the event store."""

    store: EventStore
    checkpoints: Checkpoints
    parked: ParkedEvents
    batch_size: int = 500
    retries: int = 3
    backoff: float = 0.05
    race_retries: int = 10
    faults: Faults | None = None  # the reliability suite's injected failures (workers.faults)
    on_batch: BatchListener | None = None
    shared: SharedReads | None = None

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
        since: int | None = None,
    ) -> tuple[Position | None, int]:
        """Apply every event after `position` (the saved checkpoint); the new one, events read.

        For an owner that keeps its checkpoint in memory between wake-ups instead of reading it
        back from the read-model server each time. `since`: the signals counted when it woke,
        which lets it share reads (`shared`) with the process's other subscribers.
        """
        if self.faults is not None:
            self.faults.before_run(subscriber.name)
        run = _Pass(subscriber, position, since, self._next_page(position, since))
        try:
            while events := await run.page:
                if still_owner is not None and not await still_owner():
                    break  # lost the lease: stop before writing anything more
                if not await self._take(run, events):
                    break
            else:
                await self._flush_held(run)
            await asyncio.gather(*run.saves)
        finally:
            await _wind_down(run)
        return run.position, run.total

    async def _take(self, run: _Pass, events: list[StoredEvent]) -> bool:
        """Write a page and checkpoint it; whether to read on at once."""
        run.position = events[-1].position
        # A full page means a backlog: read the next one while this one is written, so
        # PostgreSQL and the read-model server work side by side. A partial one is the
        # head: read again once it is written, so the next batch holds everything
        # committed meanwhile, not a snapshot taken before the write (a batch behind).
        backlog = len(events) >= self.batch_size
        if backlog:
            run.page = self._next_page(run.position, run.since)
        relevant = await self._write(run.subscriber, events)
        if await self._written(run, events, backlog):
            self._checkpoint(run, events)
        if not backlog:
            if not relevant:
                # Nothing written, so nothing to catch up on at once: the next wake-up
                # signal comes within NOTIFY's interval, and an immediate re-read would
                # spin on the few events committed meanwhile.
                return False
            run.page = self._next_page(run.position, run.since)
        return True

    async def _write(self, subscriber: Subscriber, events: list[StoredEvent]) -> bool:
        """Apply the events the subscriber handles, timing the batch; whether there were any."""
        relevant = [e for e in events if e.type in subscriber.handles]
        started, started_ns = time.perf_counter(), time.time_ns()
        if relevant:  # nothing to write: skip the reads some projections start with
            with tracing.span(f"project batch {subscriber.name}", events=len(relevant)):
                await self.apply(subscriber, relevant)
            if tracing.enabled() and not getattr(subscriber, "traces_events", False):
                _trace_events(subscriber.name, relevant, started_ns)
        BATCH_SECONDS.labels(subscriber.name).observe(time.perf_counter() - started)
        BATCH_EVENTS.labels(subscriber.name).observe(len(events))
        return bool(relevant)

    async def _written(self, run: _Pass, events: list[StoredEvent], backlog: bool) -> bool:
        """Whether the effects of the pages so far are written: a buffered one flushes at times."""
        subscriber = run.subscriber
        if not isinstance(subscriber, Buffered):
            return True
        run.held, run.tail = run.held or events[0], events[-1]
        run.total += len(events)  # counted here, as the checkpoint may not follow
        if backlog and not subscriber.due():
            return False
        await _flush(subscriber)
        return True

    async def _flush_held(self, run: _Pass) -> None:
        """At the head: flush what a buffered subscriber still holds, and checkpoint it."""
        if isinstance(run.subscriber, Buffered) and run.tail is not None and run.held:
            await _flush(run.subscriber)
            self._checkpoint(run, [run.tail])

    def _checkpoint(self, run: _Pass, events: list[StoredEvent]) -> None:
        """Start saving the checkpoint after `events`, without waiting for it."""
        # Each checkpoint goes after its batch's writes, and is written while the next
        # batch is read and applied (checkpoints only move forwards, so saves may
        # overlap); a crash in between re-applies that batch, which every projection
        # tolerates. A failed save stops the run at the next batch.
        run.saves = [save for save in run.saves if not _settled(save)]
        first, count = events[0], len(events)
        if run.held:  # a buffered subscriber's flush: every page since the last one
            first, count, run.held = run.held, run.total - run.flushed, None
            run.flushed = run.total
        else:
            run.total += count
        run.saves.append(
            asyncio.ensure_future(self._save(run.subscriber.name, first, events[-1], count))
        )

    async def _save(self, name: str, first: StoredEvent, last: StoredEvent, count: int) -> None:
        await self.checkpoints.save(name, last.position, count)
        if self.on_batch is not None:
            self.on_batch(name, first.token, last.token, count)

    def _next_page(
        self, after: Position | None, since: int | None
    ) -> asyncio.Future[list[StoredEvent]]:
        return asyncio.ensure_future(self._read(after, since))

    async def _read(self, after: Position | None, since: int | None) -> list[StoredEvent]:
        if since is None or self.shared is None:
            return await self.store.read_all(after, self.batch_size)
        return await self.shared.read_all(after, self.batch_size, since)

    async def apply(self, subscriber: Subscriber, events: Sequence[StoredEvent]) -> None:
        """Apply a batch; an event whose effects cannot be written is isolated, then parked.

        A batch that fails for any reason but an outage is split in halves, each applied in
        turn (every write is guarded, so what already went in is not applied twice), until the
        failing event stands alone: it is retried with backoff, then parked, and the rest of
        the batch goes on. An outage (PostgreSQL or MongoDB unreachable) parks nothing: it
        propagates, and the subscriber's supervisor retries the batch from its checkpoint.
        """
        try:
            await self._apply_racing(subscriber, events)
            if log.isEnabledFor(logging.DEBUG):  # a line per event: for tracing one down
                for event in events:
                    fields = event_fields(event, subscriber.name)
                    log.debug("%s applied %s", subscriber.name, event.type, extra=fields)
        except Exception as exc:
            if not event_fault(exc):
                raise
            if len(events) == 1:
                await self._retry_or_park(subscriber, events[0], exc)
                return
            log.info(
                "%s: batch of %d failed (%s); isolating the event",
                subscriber.name,
                len(events),
                describe(exc),
            )
            half = len(events) // 2
            await self.apply(subscriber, events[:half])
            await self.apply(subscriber, events[half:])

    @property
    def _delays(self) -> Backoff:
        """`backoff`·2ⁿ after the nth failure, at most 64·`backoff` (3.2 s by default)."""
        return Backoff(base=2 * self.backoff, cap=2**6 * self.backoff)

    async def _apply_racing(self, subscriber: Subscriber, events: Sequence[StoredEvent]) -> None:
        """Apply, re-running after a lost race (another writer changed a document meanwhile)."""

        async def attempt() -> None:
            if self.faults is not None:
                self.faults.before_apply(subscriber.name, events)
            await subscriber.apply(events)

        # A race that never ends is a fault to show, not to hide: the last one propagates.
        await retry(
            attempt,
            attempts=self.race_retries,
            backoff=self._delays,
            retry_on=lambda error: isinstance(error, RACES),
            on_retry=lambda _attempt, error: log.warning("%s: %s", subscriber.name, error),
        )

    async def _retry_or_park(
        self, subscriber: Subscriber, event: StoredEvent, error: Exception
    ) -> None:
        """Retry one failing event alone a few times, then park it."""
        if await self.parked.holds(subscriber.name, event.token):
            # Parked before, and read again because a later failure re-ran its batch from the
            # checkpoint: its retries were spent then, and spending them again stalls the rest.
            return
        try:
            await retry(
                lambda: self._apply_racing(subscriber, [event]),
                attempts=self.retries + 1,
                backoff=self._delays,
                retry_on=event_fault,
                on_retry=lambda attempt, exc: self._failed(subscriber.name, event, exc, attempt),
                failed=error,  # the batch's failure that isolated it: attempt 1
            )
        except Exception as exc:
            if not event_fault(exc):
                raise
            self._failed(subscriber.name, event, exc, self.retries + 1)
            await self._park(subscriber.name, event, exc, self.retries + 1)

    def _failed(self, name: str, event: StoredEvent, error: Exception, attempt: int) -> None:
        labelled(SUBSCRIBER_FAILURES, name, "event").inc()
        log.warning(
            "%s: %s at %s failed (attempt %d): %s",
            name,
            event.type,
            event.token,
            attempt,
            describe(error),
            extra=event_fields(event, name),
        )

    async def _park(self, name: str, event: StoredEvent, error: Exception, attempts: int) -> None:
        cause = error.cause if isinstance(error, ProjectorError) else error
        message = f"{event.type} at {event.token}: {describe(cause)}"
        log.error(
            "%s parks %s: %s",
            name,
            event.token,
            message,
            exc_info=error,
            extra=event_fields(event, name),
        )
        await self.parked.park(name, event, message, attempts)
        await self.checkpoints.record_error(name, message)


def _trace_events(name: str, events: list[StoredEvent], started_ns: int) -> None:
    """A span per event in its command's trace: `name` applied it, in this batch's time."""
    tracing.event_spans(
        f"project {name}",
        [
            (
                event.metadata or {},
                {
                    "ordertrail.subscriber": name,
                    "ordertrail.event_type": event.type,
                    "ordertrail.stream_id": str(event.stream_id),
                    "ordertrail.position": event.token,
                },
            )
            for event in events
        ],
        started_ns,
        time.time_ns(),
    )


def event_fields(event: StoredEvent, subscriber: str) -> dict[str, Any]:
    """The log fields of an event: where it is, and the ids of the command that wrote it."""
    metadata = event.metadata or {}
    return {
        "subscriber": subscriber,
        "stream_id": str(event.stream_id),
        "position": event.token,
        "event_type": event.type,
        "request_id": metadata.get("request_id"),
        "correlation_id": metadata.get("correlation_id"),
        "causation_id": metadata.get("causation_id"),
        "actor": metadata.get("actor"),
    }


def event_fault(error: Exception) -> bool:
    """Whether `error` may be the event's fault: neither an outage nor a lost race."""
    return kind_of(error) != "infrastructure" and not isinstance(error, RACES)


async def _flush(subscriber: Buffered) -> None:
    """Flush; on failure forget what was held, as the collection is the truth from there."""
    try:
        await subscriber.flush()
    except BaseException:
        subscriber.discard()
        raise


def _settled(save: asyncio.Future[None]) -> bool:
    """Whether a checkpoint save has finished; raises what it failed with."""
    if not save.done():
        return False
    save.result()
    return True


async def _wind_down(run: _Pass) -> None:
    """Drop the read nobody will use and let every checkpoint save finish."""
    await _discard(run.page)
    for save in run.saves:  # not cancelled: a save cut off mid-write proves nothing
        with contextlib.suppress(Exception):
            await save


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
