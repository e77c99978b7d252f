"""The snapshots table's statements, in asyncpg's positional form (eventstore/snapshots.py)."""

from __future__ import annotations

from typing import Any

import orjson

from eventstore.base import SnapshotRecord
from eventstore.positions import Position
from eventstore.statements import EVENT_COLUMNS, Statement, row_to_event

# The snapshot and the events after it, in one statement (one round trip, one MVCC snapshot:
# the two always agree). The snapshot's row comes first, shaped as an event row.
LOAD_LATEST = Statement(
    "SELECT true AS snap, s.transaction_id AS txid, s.position, NULL::uuid AS event_id, "
    "s.stream_id, s.stream_type, s.version, '' AS type, s.state_version AS schema_version, "
    "s.state::text AS data, '{}' AS metadata, s.taken_at AS recorded_at "
    "FROM snapshots s WHERE s.stream_id = $1 "
    f"UNION ALL SELECT false, {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > "
    "coalesce((SELECT version FROM snapshots WHERE stream_id = $1), 0) "
    "ORDER BY 1 DESC, 7",
    ("stream_id",),
)

# The newest version wins; a snapshot of another state version replaces one of this version
# either way (the code that reads it is the code now writing).
SAVE = Statement(
    "INSERT INTO snapshots AS s (stream_id, stream_type, state_version, version, "
    "transaction_id, position, state, taken_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) "
    "ON CONFLICT (stream_id) DO UPDATE SET stream_type = excluded.stream_type, "
    "state_version = excluded.state_version, version = excluded.version, "
    "transaction_id = excluded.transaction_id, position = excluded.position, "
    "state = excluded.state, taken_at = excluded.taken_at "
    "WHERE s.version < excluded.version OR s.state_version <> excluded.state_version",
    ("stream_id", "stream_type", "state_version", "version", "txid", "position", "state", "at"),
)

DROP_ONE = Statement(
    "WITH d AS (DELETE FROM snapshots WHERE stream_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ("stream_id",),
)
DROP_ALL = Statement("WITH d AS (DELETE FROM snapshots RETURNING 1) SELECT count(*) FROM d", ())


def save_params(record: SnapshotRecord) -> dict[str, Any]:
    """The parameters of SAVE."""
    return {
        "stream_id": record.stream_id,
        "stream_type": record.stream_type,
        "state_version": record.state_version,
        "version": record.version,
        "txid": record.position.transaction_id,
        "position": record.position.position,
        "state": orjson.dumps(record.state).decode(),
        "at": record.taken_at,
    }


def split_rows(rows: list[Any]) -> tuple[SnapshotRecord | None, list[Any]]:
    """LOAD_LATEST's rows as the snapshot (if any) and the event rows after it."""
    if not rows or not rows[0]["snap"]:
        return None, [row_to_event(tuple(row)[1:]) for row in rows]
    head = rows[0]
    record = SnapshotRecord(
        stream_id=head["stream_id"],
        stream_type=head["stream_type"],
        state_version=head["schema_version"],
        version=head["version"],
        position=Position(head["txid"], head["position"]),
        state=orjson.loads(head["data"]),
        taken_at=head["recorded_at"],
    )
    return record, [row_to_event(tuple(row)[1:]) for row in rows[1:]]
