"""Streams read a chunk at a time, and several merged in commit order.

A popular SKU's stock stream grows with every order it ever took, so a scan that holds whole
streams grows with the store's history. These hold at most a chunk of each stream they read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventstore.base import EventStore
from eventstore.records import StoredEvent

CHUNK = 500


@dataclass
class StreamCursor:
    """One stream's events in version order, read `chunk` at a time as they are consumed."""

    store: EventStore
    stream_id: UUID
    chunk: int = CHUNK
    on_read: Callable[[list[StoredEvent]], None] | None = None  # told of every chunk read
    next_version: int = 1
    ended: bool = False
    buffer: deque[StoredEvent] = field(default_factory=deque)

    async def read(self, limit: int | None = None) -> None:
        """Read the next `limit` (default `chunk`) events into the buffer, unless at the end."""
        if self.ended:
            return
        limit = limit or self.chunk
        events = await self.store.read_stream(self.stream_id, self.next_version, limit)
        if events:
            self.next_version = events[-1].version + 1
            self.buffer.extend(events)
            if self.on_read is not None:
                self.on_read(events)
        self.ended = len(events) < limit

    def reopen(self) -> None:
        """Read on past the end next time: events may have been appended since."""
        self.ended = False

    async def head(self) -> StoredEvent | None:
        """The next event, reading a chunk if none is buffered; None at the end."""
        if not self.buffer:
            await self.read()
        return self.buffer[0] if self.buffer else None


async def merged(cursors: Sequence[StreamCursor]) -> AsyncIterator[StoredEvent]:
    """The cursors' events in commit order (a stream's own order is its commit order)."""
    while True:
        heads = [(event, cursor) for cursor in cursors if (event := await cursor.head())]
        if not heads:
            return
        event, cursor = min(heads, key=lambda head: head[0].position)
        cursor.buffer.popleft()
        yield event
