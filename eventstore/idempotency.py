"""Idempotency records in PostgreSQL: claim a key, store the response with the append, replay."""

from __future__ import annotations

import json
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from eventstore.base import ClaimLost, IdempotencyClaim, IdempotencyConflict, StoredResponse
from eventstore.jsonb import as_json

# Take the key if it is new, expired, or abandoned in flight by a crashed request with the
# same body (its lock ran out); a live or finished record stays untouched.
_CLAIM = sa.text(
    """
    INSERT INTO idempotency_records AS r
        (actor, key, request_hash, status, lock_token, locked_until, expires_at)
    VALUES (:actor, :key, :hash, 'in_flight', :lock,
            now() + make_interval(secs => :lock_seconds), now() + make_interval(secs => :ttl))
    ON CONFLICT (actor, key) DO UPDATE SET
        request_hash = excluded.request_hash, status = 'in_flight',
        lock_token = excluded.lock_token, locked_until = excluded.locked_until,
        expires_at = excluded.expires_at, created_at = now(),
        response = NULL
    WHERE r.expires_at < now()
       OR (r.status = 'in_flight' AND r.locked_until < now()
           AND r.request_hash = excluded.request_hash)
    RETURNING lock_token
    """
)

_EXISTING = sa.text(
    "SELECT request_hash, status, response FROM idempotency_records "
    "WHERE actor = :actor AND key = :key"
)

_COMPLETE = sa.text(
    "UPDATE idempotency_records SET status = 'done', locked_until = NULL, "
    "response = CAST(:response AS jsonb) "
    "WHERE actor = :actor AND key = :key AND lock_token = :lock AND status = 'in_flight'"
)

_RELEASE = sa.text(
    "DELETE FROM idempotency_records "
    "WHERE actor = :actor AND key = :key AND lock_token = :lock AND status = 'in_flight'"
)


async def claim(
    conn: AsyncConnection, actor: str, key: str, request_hash: str, *, ttl: int, lock_seconds: int
) -> IdempotencyClaim | StoredResponse:
    """Own the key, or return its stored response, or raise IdempotencyConflict."""
    params = {"actor": actor, "key": key, "hash": request_hash, "lock": uuid4()}
    params |= {"ttl": ttl, "lock_seconds": lock_seconds}
    row = (await conn.execute(_CLAIM, params)).first()
    if row is not None:
        return IdempotencyClaim(actor, key, row.lock_token)
    existing = (await conn.execute(_EXISTING, {"actor": actor, "key": key})).first()
    if existing is None:  # deleted between the two statements: the client may simply retry
        raise IdempotencyConflict("in_flight")
    if existing.request_hash != request_hash:
        raise IdempotencyConflict("body_mismatch")
    if existing.status != "done":
        raise IdempotencyConflict("in_flight")
    response: StoredResponse = as_json(existing.response)
    return response


async def complete(
    conn: AsyncConnection, claim: IdempotencyClaim, response: StoredResponse
) -> None:
    """Record the response; raise ClaimLost (rolling back the caller's append) if not ours."""
    params = {"actor": claim.actor, "key": claim.key, "lock": claim.lock_token}
    params["response"] = json.dumps(response)
    result = await conn.execute(_COMPLETE, params)
    if result.rowcount != 1:
        raise ClaimLost(f"idempotency key {claim.key!r} was taken over")


async def release(conn: AsyncConnection, claim: IdempotencyClaim) -> None:
    """Delete our in-flight record so the key can be used again."""
    await conn.execute(_RELEASE, {"actor": claim.actor, "key": claim.key, "lock": claim.lock_token})
