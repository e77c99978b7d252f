"""What the event store can say about itself: head, watermark, lag, and what holds readers back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.positions import ORIGIN, Position
from eventstore.postgres import translate_errors

_HEAD = sa.text(
    "SELECT position, transaction_id::text::bigint AS txid, recorded_at FROM events "
    "ORDER BY transaction_id DESC, position DESC LIMIT 1"
)
_WATERMARK = sa.text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin")
_BEHIND = sa.text(
    "SELECT count(*) AS events, min(recorded_at) AS oldest FROM events "
    "WHERE (transaction_id, position) > (CAST(CAST(:txid AS text) AS xid8), :position)"
)
# Transactions holding an xid hold the watermark back, the oldest first.
_HOLDERS = sa.text(
    "SELECT pid, application_name, state, xact_start, backend_xid::text AS xid, "
    "left(query, 200) AS query FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
    "ORDER BY age(backend_xid) DESC LIMIT 5"
)
# One page of stream ids after a given one: a short statement each, by key range, so a scan of a
# large store neither holds a cursor's snapshot open for its whole length nor the ids in memory.
_STREAMS = (
    "SELECT stream_id FROM events WHERE stream_type = :stream_type AND type = ANY(:types) "
    "AND (transaction_id, position) <= (CAST(CAST(:txid AS text) AS xid8), :position) "
    "AND stream_id {} :after GROUP BY stream_id ORDER BY stream_id LIMIT :page"
)
_FIRST_STREAMS, _NEXT_STREAMS = sa.text(_STREAMS.format(">=")), sa.text(_STREAMS.format(">"))
_KNOWN_STREAMS = sa.text("SELECT DISTINCT stream_id FROM events WHERE stream_id = ANY(:ids)")
_KNOWN_POSITIONS = sa.text("SELECT position FROM events WHERE position = ANY(:ids)")


@dataclass(frozen=True)
class Head:
    """The newest committed event and the watermark readers stay below."""

    position: Position | None
    recorded_at: datetime | None
    watermark_xid: int


@dataclass(frozen=True)
class Behind:
    """How far a checkpoint is behind the store."""

    events: int
    oldest_recorded_at: datetime | None


class PostgresInspector:
    """What the PostgreSQL store says about itself, for status, rebuilds and the audit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def head(self) -> Head:
        """The store's head and the current watermark."""
        async with translate_errors(), self.engine.connect() as conn:
            row = (await conn.execute(_HEAD)).first()
            xmin = (await conn.execute(_WATERMARK)).scalar_one()
        if row is None:
            return Head(None, None, int(xmin))
        return Head(Position(row.txid, row.position), row.recorded_at, int(xmin))

    async def behind(self, checkpoint: Position | None) -> Behind:
        """Committed events after `checkpoint` (readable or still behind the watermark)."""
        after = checkpoint or ORIGIN
        params = {"txid": str(after.transaction_id), "position": after.position}
        async with translate_errors(), self.engine.connect() as conn:
            row = (await conn.execute(_BEHIND, params)).one()
        return Behind(int(row.events), row.oldest)

    async def watermark_holders(self) -> list[dict[str, Any]]:
        """The oldest transactions with an xid: what keeps the watermark (and readers) back."""
        async with translate_errors(), self.engine.connect() as conn:
            rows = (await conn.execute(_HOLDERS)).mappings().all()
        return [dict(row) for row in rows]

    async def stream_ids(
        self, stream_type: str, types: Iterable[str], upto: Position, page: int
    ) -> AsyncIterator[list[UUID]]:
        """Pages of the streams of `stream_type` with an event of `types` by `upto`, by id."""
        params: dict[str, Any] = {
            "stream_type": stream_type,
            "types": sorted(types),
            "txid": str(upto.transaction_id),
            "position": upto.position,
            "after": UUID(int=0),
            "page": page,
        }
        statement = _FIRST_STREAMS
        while True:
            async with translate_errors(), self.engine.connect() as conn:
                ids = list((await conn.execute(statement, params)).scalars())
            if ids:
                yield ids
            if len(ids) < page:
                return
            statement, params["after"] = _NEXT_STREAMS, ids[-1]

    async def known_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        """Those of `ids` that have events."""
        return await self._known(_KNOWN_STREAMS, list(ids))

    async def known_positions(self, positions: Iterable[int]) -> set[int]:
        """Those of `positions` that hold an event."""
        return await self._known(_KNOWN_POSITIONS, list(positions))

    async def _known(self, statement: sa.TextClause, ids: list[Any]) -> set[Any]:
        async with translate_errors(), self.engine.connect() as conn:
            return set((await conn.execute(statement, {"ids": ids})).scalars().all())
