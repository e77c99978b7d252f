"""`ordertrail status`: where every subscriber is, who owns it, what it parked, how far behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.inspect import behind, head, watermark_holders
from eventstore.positions import Position
from projections.aliases import Aliases
from projections.checkpoints import subscriber_status
from projections.documents import Document
from projections.registry import PROJECTIONS
from workers.fulfilment import FulfilmentProcess
from workers.lease import owners

SUBSCRIBERS = [*PROJECTIONS, FulfilmentProcess.name]


def subscriber_state(
    checkpoint: dict[str, Any], owner: object, now: datetime, stalled_after: float
) -> str:
    """`failing`, `no owner`, `stalled` (an owner that stopped saying it is alive) or `running`."""
    if checkpoint.get("failure"):
        return "failing"
    if owner is None:
        return "no owner"
    alive = checkpoint.get("alive_at")
    if alive is None or (now - _aware(alive)).total_seconds() > stalled_after:
        return "stalled"
    return "running"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def gather_status(
    engine: AsyncEngine, db: AsyncDatabase[Document], stalled_after: float = 30.0
) -> dict[str, Any]:
    """Everything `status` shows, as plain JSON-able data."""
    now = datetime.now(UTC)
    store_head = await head(engine)
    checkpoints = await subscriber_status(db, SUBSCRIBERS)
    leases = await owners(engine, SUBSCRIBERS)
    aliases = Aliases(db)
    subscribers = {}
    for name, checkpoint in checkpoints.items():
        position = Position.parse(checkpoint["token"]) if checkpoint["token"] else None
        lag = await behind(engine, position)
        lag_seconds = (
            (now - lag.oldest_recorded_at).total_seconds() if lag.oldest_recorded_at else 0
        )
        owner = leases.get(name)
        if failure := checkpoint.get("failure"):
            since = _aware(failure["failing_since"])
            checkpoint["failure"] = failure | {"failing_seconds": (now - since).total_seconds()}
        subscribers[name] = {
            "state": subscriber_state(checkpoint, owner, now, stalled_after),
            **checkpoint,
            "lag_events": lag.events,
            "lag_seconds": round(max(lag_seconds, 0.0), 3),
            "owner": owner,
        }
        if name in PROJECTIONS:
            subscribers[name]["generation"] = (await aliases.live(name))[0]
            subscribers[name]["rebuilding"] = await aliases.pending(name)
    holders = await watermark_holders(engine)
    return {
        "at": now,
        "store": {
            "head": store_head.position.token if store_head.position else None,
            "head_recorded_at": store_head.recorded_at,
            "watermark_xid": store_head.watermark_xid,
            "held_back_by": [h for h in holders if h["xact_start"] and _age(now, h) > 1.0],
        },
        "subscribers": subscribers,
    }


def _age(now: datetime, holder: dict[str, Any]) -> float:
    started: datetime = holder["xact_start"]
    return (now - started).total_seconds()
