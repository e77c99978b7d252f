"""Snapshots: each long stream's latest aggregate state, so cold loads fold a bounded tail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create snapshots: one row per stream, its newest snapshot (eventstore/snapshots.py)."""
    # A new table only: code of the previous revision never reads it, so this is safe to apply
    # under running processes of either revision.
    op.execute(
        """
        CREATE TABLE snapshots (
            stream_id uuid PRIMARY KEY,
            stream_type text NOT NULL,
            -- The aggregate class's state-schema version: a snapshot of another is ignored.
            state_version integer NOT NULL,
            version integer NOT NULL,
            -- The position of the event at `version` (transaction id, position).
            transaction_id bigint NOT NULL,
            position bigint NOT NULL,
            state jsonb NOT NULL,
            taken_at timestamptz NOT NULL,
            CONSTRAINT snapshots_version_positive CHECK (version > 0)
        )
        """
    )


def downgrade() -> None:
    """Drop snapshots (a cache: nothing is lost)."""
    op.execute("DROP TABLE snapshots")
