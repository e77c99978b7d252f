"""An append and its idempotent response in one statement, when the response allows it.

A keyed command's answer names the position of its event, known only once the row is in. So the
response is rendered first with a stand-in position, and the statement puts the real position's
token in its place as it stores the response: one autocommit round trip in which the append and
the response commit together or not at all, with no BEGIN, UPDATE and COMMIT of their own. The
statement first locks the claim's record and inserts only if the claim is still ours, so a key
taken over meanwhile leaves nothing appended (ClaimLost), and none can be taken over after.

Only a one-event append qualifies (all its results carry that event's position), and only a
response that uses the position through its token alone: rendered again with another stand-in,
it must differ exactly where the token stands. Any other append stores its response inside a
transaction.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import sqlalchemy as sa

from eventstore.base import Completion
from eventstore.positions import Position
from eventstore.records import StreamAppend
from eventstore.statements import (
    APPEND_ONE_CHECKED_FAST,
    APPEND_ONE_FAST,
    CHECKS,
    INSERT_ONE,
    RETURNING,
    Statement,
    append_results,
    statement_for,
)

_CLAIM = (
    "actor = :claim_actor AND key = :claim_key AND lock_token = CAST(:claim_token AS uuid) "
    "AND status = 'in_flight'"
)
# FOR UPDATE re-reads a record changed since the statement's snapshot, and waits for one being
# changed: a takeover committed a moment ago is seen, and none can happen until this commits.
_HEAD = (
    f"WITH claim AS (SELECT 1 FROM idempotency_records WHERE {_CLAIM} FOR UPDATE), inserted AS ("
)
_TAIL = (
    "AND EXISTS (SELECT 1 FROM claim) " + RETURNING + "), "
    "done AS (UPDATE idempotency_records SET status = 'done', locked_until = NULL, "
    "response = CAST(replace(CAST(:response AS text), CAST(:stand_in AS text), "
    "(SELECT lpad(to_hex(txid), 16, '0') || lpad(to_hex(position), 16, '0') FROM inserted)) "
    f"AS jsonb) WHERE {_CLAIM} AND EXISTS (SELECT 1 FROM inserted)) "
    "SELECT (SELECT count(*) FROM claim) AS claimed, i.position, i.txid "
    "FROM (SELECT 1) AS one LEFT JOIN inserted AS i ON true"
)
_ONE = Statement.of(sa.text(_HEAD + INSERT_ONE + _TAIL))
_ONE_CHECKED = Statement.of(sa.text(_HEAD + INSERT_ONE + CHECKS + _TAIL))
_COMPLETING = {APPEND_ONE_FAST: _ONE, APPEND_ONE_CHECKED_FAST: _ONE_CHECKED}


def completing_statement(
    streams: tuple[StreamAppend, ...], completion: Completion
) -> tuple[Statement, dict[str, Any]] | None:
    """The append storing its response in one statement, or None if it cannot."""
    statement, params = statement_for(streams)
    single = _COMPLETING.get(statement)
    if single is None:
        return None
    rendered = _rendered(streams, completion)
    if rendered is None:
        return None
    claim = completion.claim
    params |= {"claim_actor": claim.actor, "claim_key": claim.key, "claim_token": claim.lock_token}
    params["response"], params["stand_in"] = rendered
    return single, params


def _rendered(streams: tuple[StreamAppend, ...], completion: Completion) -> tuple[str, str] | None:
    """The response as JSON with a stand-in token for the position, and that token; None if
    the response uses the position otherwise than by its token."""
    first, second = _stand_in(), _stand_in()
    text = json.dumps(completion.respond(append_results(streams, [first])))
    again = json.dumps(completion.respond(append_results(streams, [second])))
    if text.replace(first.token, second.token) != again:
        return None
    return text, first.token


def _stand_in() -> Position:
    """A position no append will have soon, whose token cannot occur by chance."""
    return Position(secrets.randbits(63), secrets.randbits(63))
