"""The event store's tables as the migrations leave them (migrations/versions/ is the definition).

tests/integration/test_schema_matches_migration.py compares the two table by table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.types import UserDefinedType

# The oldest PostgreSQL this schema is supported on: CI runs on it. The store needs 13 at
# least (xid8, pg_current_xact_id, pg_current_snapshot); 13 and 14 are untested, so refused.
MIN_SERVER_VERSION = 150000  # as server_version_num reports it


class UnsupportedServer(RuntimeError):
    """The PostgreSQL server is older than MIN_SERVER_VERSION."""


def require_supported(server_version_num: int) -> None:
    """Refuse a server older than the supported minimum, naming both versions."""
    if server_version_num < MIN_SERVER_VERSION:
        found = f"{server_version_num // 10000}.{server_version_num % 10000}"
        raise UnsupportedServer(
            f"PostgreSQL {MIN_SERVER_VERSION // 10000} or newer is required; this server is {found}"
        )


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit, never-wrapping transaction id."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """The type's name in DDL."""
        return "xid8"


metadata = sa.MetaData()

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    # Readers order by (transaction_id, position) below the snapshot's xmin: see postgres.py.
    sa.Column(
        "transaction_id", XID8, nullable=False, server_default=sa.text("pg_current_xact_id()")
    ),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False),
    sa.Column("stream_id", UUID(as_uuid=True), nullable=False),
    sa.Column("stream_type", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("schema_version", sa.SmallInteger, nullable=False, server_default=sa.text("1")),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("event_id", name="events_event_id_key"),
    sa.UniqueConstraint("stream_id", "version", name="events_stream_version_key"),
    sa.CheckConstraint("version > 0", name="events_version_positive"),
    sa.Index("events_commit_order_idx", "transaction_id", "position"),
    sa.Index("events_type_idx", "stream_type", "type"),
)

idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("actor", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("lock_token", UUID(as_uuid=True)),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("response", JSONB),  # opaque to the store: whatever the command side encoded
    sa.CheckConstraint("status IN ('in_flight', 'done')", name="idempotency_status_check"),
    sa.Index("idempotency_expires_idx", "expires_at"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("stream_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("stream_type", sa.Text, nullable=False),
    sa.Column("state_version", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("transaction_id", sa.BigInteger, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("state", JSONB, nullable=False),
    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("version > 0", name="snapshots_version_positive"),
)
