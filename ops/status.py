"""`ordertrail status`: where every subscriber is, who owns it, what it parked, how far behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eventstore.positions import Position
from projections.aliases import Aliases
from projections.checkpoints import subscriber_status
from subscriptions import PROJECTION_NAMES, SUBSCRIBER_NAMES
from subscriptions.ports import ReadSide


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


async def gather_status(side: ReadSide, stalled_after: float = 30.0) -> dict[str, Any]:
    """Everything `status` shows, as plain JSON-able data."""
    now, inspector = side.clock(), side.inspector
    store_head = await inspector.head()
    checkpoints = await subscriber_status(side.db, SUBSCRIBER_NAMES)
    leases = await side.leases.owners(SUBSCRIBER_NAMES)
    aliases = Aliases(side.db)
    subscribers = {}
    for name, checkpoint in checkpoints.items():
        position = Position.parse(checkpoint["token"]) if checkpoint["token"] else None
        lag = await inspector.behind(position)
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
        if name in PROJECTION_NAMES:
            subscribers[name]["generation"] = (await aliases.live(name))[0]
            subscribers[name]["rebuilding"] = await aliases.pending(name)
    holders = await inspector.watermark_holders()
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


def to_json(data: Any) -> str:
    """JSON with datetimes as ISO strings."""
    return json.dumps(
        data, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)
    )
