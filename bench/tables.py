"""Ceiling tables with the `events` table's shape (migrations/versions/0001_event_store.py)."""

from __future__ import annotations


def events_like(name: str) -> list[str]:
    """DDL of a table shaped like `events`: same columns, defaults, constraints and indexes."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {name} (
            position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            event_id uuid NOT NULL,
            stream_id uuid NOT NULL,
            stream_type text NOT NULL,
            version integer NOT NULL,
            type text NOT NULL,
            schema_version smallint NOT NULL DEFAULT 1,
            data jsonb NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT {name}_event_id_key UNIQUE (event_id),
            CONSTRAINT {name}_stream_version_key UNIQUE (stream_id, version),
            CONSTRAINT {name}_version_positive CHECK (version > 0)
        )
        """,
        f"CREATE INDEX IF NOT EXISTS {name}_commit_order_idx ON {name} (transaction_id, position)",
        f"CREATE INDEX IF NOT EXISTS {name}_type_idx ON {name} (stream_type, type)",
    ]
