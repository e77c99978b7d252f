"""Expired idempotency records deleted a bounded batch at a time (the worker's purge runs it).

One statement, autocommit: at most `$1` expired records, oldest first. A record is left alone
while a request holds it: one whose in-flight lock has not run out (possible only with a time to
live shorter than the lock), and one whose row a transaction has locked (a claim taking the key
over, a completion committing with its append). SKIP LOCKED passes over those instead of waiting,
so concurrent purges take disjoint batches and none stalls a command. The outer expiry check
holds for the row as it is when deleted: a record claimed again after it expired has a new
`expires_at` and stays.
"""

from __future__ import annotations

PURGE = """
DELETE FROM idempotency_records AS r
USING (
    SELECT actor, key FROM idempotency_records
    WHERE expires_at < now() AND (locked_until IS NULL OR locked_until < now())
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) AS expired
WHERE r.actor = expired.actor AND r.key = expired.key AND r.expires_at < now()
RETURNING 1
"""
