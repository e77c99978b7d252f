"""Repairs without a rebuild: re-project one stream, or re-run parked events.

Both pause the live projection (handoff) while they write, and only use events up to its
checkpoint: later events are the live projection's to apply, on top of the repaired documents.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable
from typing import Any, cast
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase

from eventstore.base import EventStore
from eventstore.positions import Position
from eventstore.records import StoredEvent
from eventstore.repository import Repository
from projections.aliases import Aliases
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.documents import Document
from projections.registry import PROJECTIONS, build
from subscriptions import FULFILMENT, ProjectorError, Repairable
from subscriptions.ports import ReadSide
from workers.fulfilment import FulfilmentProcess
from workers.handoff import handoff


async def live_projection(name: str, db: AsyncDatabase[Document]) -> Repairable:
    """Projection `name` on its live collections."""
    _, names = await Aliases(db).live(name)
    return cast(Repairable, build(name, db, names))


async def replay_stream(stream_id: UUID, side: ReadSide) -> dict[str, int]:
    """Re-project one stream into every projection that handles it: {projection: documents}."""
    store, db = side.store, side.db
    events = await store.read_stream(stream_id)
    if not events:
        raise KeyError(f"stream {stream_id} not found")
    rewritten = {}
    for name, kind in PROJECTIONS.items():
        handled = [e for e in events if e.type in kind.handles]
        if handled:
            async with handoff(side, name):
                # Resolved inside the lease: a rebuild swaps the alias only while it holds the
                # lease, so this generation stays live (not retired) until the replay is done.
                projection = await live_projection(name, db)
                upto = await Checkpoints(db).load(name)
                rewritten[name] = await _replay_into(projection, store, handled, upto)
    return rewritten


async def _replay_into(
    projection: Repairable,
    store: EventStore,
    handled: list[StoredEvent],
    upto: Position | None,
) -> int:
    """Fold every event feeding the touched documents, up to the checkpoint, from scratch."""
    if upto is None:
        return 0
    # The events' own streams first: the sources of a document may only show in their other
    # events (a product rename carries no SKU; its stream's registration does).
    own = {event.stream_id for event in handled}
    streams = {stream: await store.read_stream(stream) for stream in sorted(own)}
    read = [event for events in streams.values() for event in events]
    for stream in sorted(projection.sources(read) - own):
        streams[stream] = await store.read_stream(stream)
    merged = heapq.merge(*streams.values(), key=lambda e: e.position)
    # Only the documents `handled` touch: a stream's other documents (its audit entries, one per
    # event) are not being repaired, and rewriting them all would cost a write each.
    touched = {projection.key(event) for event in handled}
    feeding = [e for e in merged if e.type in projection.handles and projection.key(e) in touched]
    return await projection.rewrite(feeding, upto)


async def retry_parked(name: str, side: ReadSide, repository: Repository) -> dict[str, Any]:
    """Apply the parked events of `name` again: {retried, fixed, still_failing}.

    A parked event is not folded onto its documents as they are now: later events of the same
    documents were applied meanwhile, and folding an older one on top of them (an order's
    confirmation after its shipment) would leave what no rebuild gives. Its documents are
    refolded from every event feeding them instead, as a replay does. The fulfilment process
    reacts to each again: its steps are idempotent, whatever happened since.
    """
    db, store, parked = side.db, side.store, ParkedEvents(side.db)
    entries = await parked.list(name)
    events = [await _event_at(store, UUID(e["stream_id"]), e["version"]) for e in entries]
    failing: list[str] = []
    if name == FULFILMENT:
        process = FulfilmentProcess(repository)
        for event in events:
            await _retry(parked, name, event, process.react(event), failing)
    else:
        async with handoff(side, name):
            projection = await live_projection(name, db)
            upto = await Checkpoints(db).load(name)
            for event in events:
                refold = _refold_parked(projection, store, event, upto)
                await _retry(parked, name, event, refold, failing)
    if not failing:
        await Checkpoints(db).record_error(name, None)
    fixed = len(events) - len(failing)
    return {"retried": len(events), "fixed": fixed, "still_failing": failing}


async def _refold_parked(
    projection: Repairable, store: EventStore, event: StoredEvent, upto: Position | None
) -> None:
    """Refold the documents a parked event touches; an error if there were none to refold."""
    if not await _replay_into(projection, store, [event], upto):
        raise LookupError("no document to refold it into")


async def _retry(
    parked: ParkedEvents, name: str, event: StoredEvent, work: Awaitable[Any], failing: list[str]
) -> None:
    """Run `work` for a parked event: unpark it if it succeeds, else note why it failed."""
    try:
        await work
    except Exception as exc:
        failing.append(str(ProjectorError(event, exc)))
        return
    await parked.remove(name, event.token)


async def _event_at(store: EventStore, stream_id: UUID, version: int) -> StoredEvent:
    [event] = await store.read_stream(stream_id, version, 1)
    return event
