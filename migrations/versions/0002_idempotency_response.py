"""Idempotency records keep the command's answer as one opaque jsonb value.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Fold response_status, response_body and response_headers into one `response` column."""
    op.execute("ALTER TABLE idempotency_records ADD COLUMN response jsonb")
    # The object the command API stores (command_api/dispatch.py, `Answer`), so a key
    # completed before this revision replays the same status, body and headers after it.
    op.execute(
        """
        UPDATE idempotency_records SET response = jsonb_build_object(
            'status', response_status,
            'body', response_body,
            'headers', COALESCE(response_headers, '{}'::jsonb))
        WHERE response_status IS NOT NULL
        """
    )
    op.execute(
        "ALTER TABLE idempotency_records DROP COLUMN response_status, "
        "DROP COLUMN response_body, DROP COLUMN response_headers"
    )


def downgrade() -> None:
    """Split `response` back into the three columns of revision 0001."""
    op.execute(
        "ALTER TABLE idempotency_records ADD COLUMN response_status integer, "
        "ADD COLUMN response_body jsonb, ADD COLUMN response_headers jsonb"
    )
    op.execute(
        """
        UPDATE idempotency_records SET
            response_status = (response ->> 'status')::integer,
            response_body = response -> 'body',
            response_headers = response -> 'headers'
        WHERE response IS NOT NULL
        """
    )
    op.execute("ALTER TABLE idempotency_records DROP COLUMN response")
