"""Idempotency records in PostgreSQL: claim a key, store the response with the append, replay.

Each step is one statement on the store's own asyncpg connections: a claim, or the stored
answer of a replay, in one autocommit round trip; a response inside its append's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

from eventstore.base import ClaimLost, IdempotencyClaim, IdempotencyConflict, StoredResponse
from eventstore.jsonb import as_json

# `DriverPool.fetch` (autocommit) or `asyncpg.Connection.fetch` (inside a transaction).
Fetch = Callable[..., Awaitable[list[Any]]]

# Take the key if it is new, expired, or abandoned in flight by a crashed request with the
# same body (its lock ran out); a live or finished record stays untouched, and is returned
# instead by the same statement (a replay costs one round trip too).
_CLAIM = """
WITH quiet AS (SELECT set_config('synchronous_commit', 'off', true)),
taken AS (
    INSERT INTO idempotency_records AS r
        (actor, key, request_hash, status, lock_token, locked_until, expires_at)
    VALUES ($1, $2, $3, 'in_flight', $4,
            now() + make_interval(secs => $5::float8), now() + make_interval(secs => $6::float8))
    ON CONFLICT (actor, key) DO UPDATE SET
        request_hash = excluded.request_hash, status = 'in_flight',
        lock_token = excluded.lock_token, locked_until = excluded.locked_until,
        expires_at = excluded.expires_at, created_at = now(),
        response = NULL
    WHERE r.expires_at < now()
       OR (r.status = 'in_flight' AND r.locked_until < now()
           AND r.request_hash = excluded.request_hash)
    RETURNING lock_token
)
SELECT lock_token, NULL AS request_hash, NULL AS status, NULL AS response FROM taken, quiet
UNION ALL
SELECT NULL, request_hash, status, response::text FROM idempotency_records
WHERE actor = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM taken)
"""

_EXISTING = (
    "SELECT NULL::uuid AS lock_token, request_hash, status, response::text AS response "
    "FROM idempotency_records WHERE actor = $1 AND key = $2"
)

_COMPLETE = (
    "UPDATE idempotency_records SET status = 'done', locked_until = NULL, "
    "response = $4::jsonb "
    "WHERE actor = $1 AND key = $2 AND lock_token = $3 AND status = 'in_flight' RETURNING 1"
)

_RELEASE = (
    "DELETE FROM idempotency_records "
    "WHERE actor = $1 AND key = $2 AND lock_token = $3 AND status = 'in_flight'"
)


async def claim(
    fetch: Fetch, actor: str, key: str, request_hash: str, *, ttl: int, lock_seconds: int
) -> IdempotencyClaim | StoredResponse:
    """Own the key, or return its stored response, or raise IdempotencyConflict."""
    rows = await fetch(_CLAIM, actor, key, request_hash, uuid4(), lock_seconds, ttl)
    if not rows:
        # A record the statement's snapshot did not show yet: a request with this key
        # committed its claim while ours waited for it. Look again, now that it is there.
        rows = await fetch(_EXISTING, actor, key)
    if not rows:  # deleted meanwhile (released): the client may simply retry
        raise IdempotencyConflict("in_flight")
    row = rows[0]
    if row["lock_token"] is not None:
        return IdempotencyClaim(actor, key, row["lock_token"])
    if row["request_hash"] != request_hash:
        raise IdempotencyConflict("body_mismatch")
    if row["status"] != "done":
        raise IdempotencyConflict("in_flight")
    response: StoredResponse = as_json(row["response"])
    return response


async def complete(fetch: Fetch, claim: IdempotencyClaim, response: StoredResponse) -> None:
    """Record the response; raise ClaimLost (rolling back the caller's append) if not ours."""
    text = json.dumps(response)
    if not await fetch(_COMPLETE, claim.actor, claim.key, claim.lock_token, text):
        raise lost(claim.key)


def lost(key: str) -> ClaimLost:
    """The error of a request whose key another request took over."""
    return ClaimLost(f"idempotency key {key!r} was taken over")


async def release(fetch: Fetch, claim: IdempotencyClaim) -> None:
    """Delete our in-flight record so the key can be used again."""
    await fetch(_RELEASE, claim.actor, claim.key, claim.lock_token)
