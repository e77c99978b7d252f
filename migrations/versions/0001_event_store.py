"""Event store: the append-only events table and idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create events (with commit-order columns) and idempotency_records."""
    op.execute(
        """
        CREATE TABLE events (
            position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            -- The writer's transaction id: readers stay below the oldest running one (xmin),
            -- so a late-committing transaction with a smaller position is never skipped.
            transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            event_id uuid NOT NULL,
            stream_id uuid NOT NULL,
            stream_type text NOT NULL,
            version integer NOT NULL,
            type text NOT NULL,
            schema_version smallint NOT NULL DEFAULT 1,
            data jsonb NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
            recorded_at timestamptz NOT NULL,
            CONSTRAINT events_event_id_key UNIQUE (event_id),
            CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
            CONSTRAINT events_version_positive CHECK (version > 0)
        )
        """
    )
    op.execute("CREATE INDEX events_commit_order_idx ON events (transaction_id, position)")
    op.execute("CREATE INDEX events_type_idx ON events (stream_type, type)")
    # History is immutable: refuse updates and deletes even from a mistaken script.
    op.execute(
        """
        CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are append-only (% refused)', TG_OP;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
    )
    op.execute(
        """
        CREATE TABLE idempotency_records (
            actor text NOT NULL,
            key text NOT NULL,
            request_hash text NOT NULL,
            status text NOT NULL,
            lock_token uuid,
            locked_until timestamptz,
            response_status integer,
            response_body jsonb,
            response_headers jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (actor, key),
            CONSTRAINT idempotency_status_check CHECK (status IN ('in_flight', 'done'))
        )
        """
    )
    op.execute("CREATE INDEX idempotency_expires_idx ON idempotency_records (expires_at)")


def downgrade() -> None:
    """Drop everything upgrade() created."""
    op.execute("DROP TABLE idempotency_records")
    op.execute("DROP TABLE events")
    op.execute("DROP FUNCTION events_append_only()")
