"""Idempotency records in PostgreSQL: claim a key, store the response with the append, replay.

Each step is one statement on the store's own asyncpg connections: a claim, or the stored
answer of a replay, in one autocommit round trip; a response inside its append's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

from eventstore.base import (
    ClaimLost,
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyKey,
    StoredResponse,
)
from eventstore.jsonb import as_json

# `DriverPool.fetch` (autocommit) or `asyncpg.Connection.fetch` (inside a transaction).
Fetch = Callable[..., Awaitable[list[Any]]]

# The claim's commit does not wait for its WAL to reach the disk: no answer is given from it, and
# the append that does get answered commits after it with a flush that covers it (the WAL is one
# sequence), so a claim a crash loses never has a committed append. It spares a flush per claim.
_QUIET = "quiet AS (SELECT set_config('synchronous_commit', 'off', true))"

# Take the key if it is new, expired, or abandoned in flight by a crashed request with the
# same body (its lock ran out); a live or finished record stays untouched.
_TAKE_OVER = """
    ON CONFLICT (actor, key) DO UPDATE SET
        request_hash = excluded.request_hash, status = 'in_flight',
        lock_token = excluded.lock_token, locked_until = excluded.locked_until,
        expires_at = excluded.expires_at, created_at = now(),
        response = NULL
    WHERE r.expires_at < now()
       OR (r.status = 'in_flight' AND r.locked_until < now()
           AND r.request_hash = excluded.request_hash)
"""
_INSERT = """
    INSERT INTO idempotency_records AS r
        (actor, key, request_hash, status, lock_token, locked_until, expires_at)
"""
# locked_until and expires_at: $5 and $6 seconds from now.
_UNTIL = "now() + make_interval(secs => $5::float8), now() + make_interval(secs => $6::float8)"

# One claim; a record it leaves untouched is returned instead by the same statement (a replay
# costs one round trip too).
_CLAIM = f"""
WITH {_QUIET},
taken AS ({_INSERT} VALUES ($1, $2, $3, 'in_flight', $4, {_UNTIL})
    {_TAKE_OVER} RETURNING lock_token
)
SELECT lock_token, NULL AS request_hash, NULL AS status, NULL AS response FROM taken, quiet
UNION ALL
SELECT NULL, request_hash, status, response::text FROM idempotency_records
WHERE actor = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM taken)
"""

# Several claims of distinct keys in one statement, a row each in their order. Records are
# taken in (actor, key) order, so two such statements never wait for each other crosswise. A
# record left untouched is read by its primary key, a row at a time (LIMIT keeps the planner
# from turning it into a join, which it once ran as a hash join over the whole table).
_CLAIM_MANY = f"""
WITH {_QUIET},
asked AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[]) WITH ORDINALITY
    AS a(actor, key, request_hash, lock_token, n)),
taken AS ({_INSERT} SELECT actor, key, request_hash, 'in_flight', lock_token, {_UNTIL}
    FROM asked ORDER BY actor, key
    {_TAKE_OVER} RETURNING actor, key, lock_token
)
SELECT t.lock_token, e.request_hash, e.status, e.response
FROM asked a CROSS JOIN quiet
LEFT JOIN taken t ON t.actor = a.actor AND t.key = a.key
LEFT JOIN LATERAL (SELECT request_hash, status, response::text AS response
    FROM idempotency_records WHERE actor = a.actor AND key = a.key LIMIT 1) e
    ON t.lock_token IS NULL
ORDER BY a.n
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


Claimed = IdempotencyClaim | StoredResponse


async def claim(
    fetch: Fetch, actor: str, key: str, request_hash: str, *, ttl: int, lock_seconds: int
) -> Claimed:
    """Own the key, or return its stored response, or raise IdempotencyConflict."""
    rows = await fetch(_CLAIM, actor, key, request_hash, uuid4(), lock_seconds, ttl)
    request = IdempotencyKey(actor, key, request_hash)
    answer = await _answer(fetch, request, rows[0] if rows else None)
    if isinstance(answer, IdempotencyConflict):
        raise answer
    return answer


async def claim_many(
    fetch: Fetch, requests: Sequence[IdempotencyKey], *, ttl: int, lock_seconds: int
) -> list[Claimed | Exception]:
    """`claim` for several distinct keys in one statement; each one's answer or conflict."""
    columns = [[getattr(r, name) for r in requests] for name in ("actor", "key", "request_hash")]
    tokens = [uuid4() for _ in requests]
    rows = await fetch(_CLAIM_MANY, *columns, tokens, lock_seconds, ttl)
    answers: list[Claimed | Exception] = []
    for request, row in zip(requests, rows, strict=True):
        found = row["lock_token"] is not None or row["status"] is not None
        answers.append(await _answer(fetch, request, row if found else None))
    return answers


async def answered(fetch: Fetch, request: IdempotencyKey) -> StoredResponse:
    """The stored answer of a key an append found taken; IdempotencyConflict if there is none
    for this request (another body, still in flight, or released since)."""
    answer = await _answer(fetch, request, None)
    if isinstance(answer, IdempotencyConflict):
        raise answer
    if isinstance(answer, IdempotencyClaim):  # _EXISTING never returns a lock token
        raise IdempotencyConflict("in_flight")
    return answer


async def _answer(
    fetch: Fetch, request: IdempotencyKey, row: Any | None
) -> Claimed | IdempotencyConflict:
    """What a claim's row says: ours, the stored response, or the conflict."""
    if row is None:
        # A record the statement's snapshot did not show yet: a request with this key
        # committed its claim while ours waited for it. Look again, now that it is there.
        rows = await fetch(_EXISTING, request.actor, request.key)
        if not rows:  # deleted meanwhile (released): the client may simply retry
            return IdempotencyConflict("in_flight")
        row = rows[0]
    if row["lock_token"] is not None:
        return IdempotencyClaim(request.actor, request.key, row["lock_token"])
    if row["request_hash"] != request.request_hash:
        return IdempotencyConflict("body_mismatch")
    if row["status"] != "done":
        return IdempotencyConflict("in_flight")
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
