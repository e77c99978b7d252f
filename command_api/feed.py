"""The event feed: the store's committed events in commit order, a page at a time, gap-free.

Gap-free because every page is the event store's own `read_all`, which stops below the oldest
transaction still in flight (the watermark the workers use): an event that commits later
behind one already served can never be skipped. Filters (`types`, `stream_types`) are applied
to what was read, and `next` is the position of the last event *read*, shown or not, so a
narrow filter still moves on. A page reads at most `SCAN_PAGES` store pages, so a filter that
matches nothing costs a bounded read per request, not a scan of the history.

Waiting (long-poll and SSE) is driven by `HeadWatch`: one per process, woken by this process's
appends at once and by every other writer's NOTIFY, with a slow tick behind both. A waiter
whose read came back short of the newest notified position (the watermark held it back: an
older transaction is still open) reads again after a short, growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from core.metrics import FEED_CLIENTS
from core.timestamps import format_instant
from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent

SCAN_PAGES = 10  # store pages of `limit` events read at most per feed page
IDLE_TICK = 1.0  # seconds between reads of a waiter that heard nothing (a lost NOTIFY)
HELD_BACK_FIRST, HELD_BACK_MAX = 0.01, 0.5  # re-read pauses while the watermark holds back


class HeadWatch:
    """Wakes every waiter when something newer may have committed; knows the newest it heard."""

    def __init__(self) -> None:
        self.latest: Position | None = None
        self._changed = asyncio.Event()

    def heard(self, position: Position | None = None) -> None:
        """An append committed (at `position`, when known): wake every waiter."""
        if position is not None and (self.latest is None or position > self.latest):
            self.latest = position
        self._changed.set()
        self._changed = asyncio.Event()  # later waiters wait for the next one

    def heard_token(self, token: str) -> None:
        """A NOTIFY payload (a position token; anything else still wakes)."""
        try:
            position: Position | None = Position.parse(token)
        except ValueError:
            position = None
        self.heard(position)

    async def wait(self, seconds: float) -> None:
        """Return at the next wake-up, or after `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, seconds))


@dataclass(frozen=True)
class FeedQuery:
    """Which events a consumer follows, and from where."""

    after: Position | None = None
    types: frozenset[str] | None = None
    stream_types: frozenset[str] | None = None
    limit: int = 100

    def wants(self, event: StoredEvent) -> bool:
        """Whether the filters let `event` through."""
        return (self.types is None or event.type in self.types) and (
            self.stream_types is None or event.stream_type in self.stream_types
        )


@dataclass(frozen=True)
class FeedPage:
    """Events in commit order, and the token to read on from (None: nothing read yet)."""

    events: Sequence[StoredEvent]
    next: Position | None


class Feed:
    """Pages of the feed over an event store, waiting for new events when asked to."""

    def __init__(self, store: EventStore, watch: HeadWatch, max_clients: int) -> None:
        self.store, self.watch, self.max_clients = store, watch, max_clients
        self.clients = 0

    async def page(self, query: FeedQuery) -> FeedPage:
        """Up to `limit` events after `query.after`; returns at once, maybe with none."""
        found: list[StoredEvent] = []
        after = query.after
        for _ in range(SCAN_PAGES):
            events = await self.store.read_all(after, query.limit)
            if events:
                after = events[-1].position
            for event in events:
                if query.wants(event):
                    found.append(event)
                    if len(found) == query.limit:
                        return FeedPage(found, event.position)
            if found or len(events) < query.limit:
                break
        return FeedPage(found, after)

    async def wait_page(self, query: FeedQuery, seconds: float) -> FeedPage:
        """A page with at least one event, waiting up to `seconds` for one to commit."""
        deadline, pause = time.monotonic() + seconds, HELD_BACK_FIRST
        while True:
            page = await self.page(query)
            remaining = deadline - time.monotonic()
            if page.events or remaining <= 0:
                return page
            query = replace(query, after=page.next)
            latest = self.watch.latest
            if latest is not None and (page.next is None or page.next < latest):
                # Heard of a commit that the read did not show: an older transaction is still
                # open (the watermark), or the filter skipped a full scan. Read again soon.
                await asyncio.sleep(min(pause, remaining))
                pause = min(pause * 2, HELD_BACK_MAX)
                continue
            pause = HELD_BACK_FIRST
            await self.watch.wait(min(IDLE_TICK, remaining))

    def admit(self, kind: str) -> bool:
        """Take a waiting client's place (long-poll or stream); False when all are taken."""
        if self.clients >= self.max_clients:
            return False
        self.clients += 1
        FEED_CLIENTS.labels(kind).inc()
        return True

    def leave(self, kind: str) -> None:
        """Give back a place `admit` gave."""
        self.clients -= 1
        FEED_CLIENTS.labels(kind).dec()


def event_json(event: StoredEvent) -> dict[str, Any]:
    """An event as the feed shows it (upcast by the store before it gets here)."""
    return {
        "position": event.token,
        "event_id": str(event.event_id),
        "stream_id": str(event.stream_id),
        "stream_type": event.stream_type,
        "version": event.version,
        "type": event.type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata,
        "recorded_at": format_instant(event.recorded_at),
    }


def page_body(page: FeedPage) -> bytes:
    """The JSON body of a long-poll answer."""
    next_token = page.next.token if page.next is not None else None
    return orjson.dumps({"events": [event_json(e) for e in page.events], "next": next_token})


def sse_events(events: Sequence[StoredEvent]) -> bytes:
    """Server-Sent Events, one per event: `id:` its position token, `event:` its type."""
    return b"".join(
        b"id: %s\nevent: %s\ndata: %s\n\n"
        % (e.token.encode(), e.type.encode(), orjson.dumps(event_json(e)))
        for e in events
    )
