"""Repairs without a rebuild: re-project one stream, or re-run parked events.

Both pause the live projection (handoff) while they write, and only use events up to its
checkpoint: later events are the live projection's to apply, on top of the repaired documents.
"""

from __future__ import annotations

import heapq
from typing import Any, cast
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.positions import Position
from eventstore.postgres import PostgresEventStore
from eventstore.records import StoredEvent
from projections.aliases import Aliases
from projections.base import Document, ProjectorError, Repairable
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import PROJECTIONS, build
from workers.handoff import handoff


async def live_projection(name: str, db: AsyncDatabase[Document]) -> Repairable:
    """Projection `name` on its live collections."""
    _, names = await Aliases(db).live(name)
    return cast(Repairable, build(name, db, names))


async def replay_stream(
    stream_id: UUID, engine: AsyncEngine, db: AsyncDatabase[Document]
) -> dict[str, int]:
    """Re-project one stream into every projection that handles it: {projection: documents}."""
    store = PostgresEventStore(engine)
    events = await store.read_stream(stream_id)
    if not events:
        raise KeyError(f"stream {stream_id} not found")
    rewritten = {}
    for name, kind in PROJECTIONS.items():
        handled = [e for e in events if e.type in kind.handles]
        if handled:
            async with handoff(engine, db, name):
                # Resolved inside the lease: a rebuild swaps the alias only while it holds the
                # lease, so this generation stays live (not retired) until the replay is done.
                projection = await live_projection(name, db)
                upto = await Checkpoints(db).load(name)
                rewritten[name] = await _replay_into(projection, store, handled, upto)
    return rewritten


async def _replay_into(
    projection: Repairable,
    store: PostgresEventStore,
    handled: list[StoredEvent],
    upto: Position | None,
) -> int:
    """Fold every event feeding the touched documents, up to the checkpoint, from scratch."""
    if upto is None:
        return 0
    streams = [await store.read_stream(s) for s in sorted(projection.sources(handled))]
    merged = heapq.merge(*streams, key=lambda e: e.position)
    return await projection.rewrite([e for e in merged if e.type in projection.handles], upto)


async def retry_parked(
    name: str, engine: AsyncEngine, db: AsyncDatabase[Document]
) -> dict[str, Any]:
    """Apply the parked events of `name` again: {retried, fixed, still_failing}."""
    parked, store = ParkedEvents(db), PostgresEventStore(engine)
    fixed, failing = 0, []
    async with handoff(engine, db, name):
        projection = await live_projection(name, db)
        for entry in await parked.list(name):
            event = await _event_at(store, UUID(entry["stream_id"]), entry["version"])
            try:
                await projection.force(event)
            except Exception as exc:
                failing.append(str(ProjectorError(event, exc)))
                continue
            await parked.remove(name, entry["position"])
            fixed += 1
    if not failing:
        await Checkpoints(db).record_error(name, None)
    return {"retried": fixed + len(failing), "fixed": fixed, "still_failing": failing}


async def _event_at(store: PostgresEventStore, stream_id: UUID, version: int) -> StoredEvent:
    [event] = await store.read_stream(stream_id, version, 1)
    return event
