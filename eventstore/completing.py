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

Such an append joins the group commit like any other (batching.py): a batch holding keyed appends
locks each one's claim, inserts the events of those whose claim is still held and whose checks
pass, and stores each one's response with its real token, still in one autocommit statement. A
keyed command then shares its commit with the others in flight instead of paying one of its own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from eventstore.base import Completion
from eventstore.positions import Position
from eventstore.records import StreamAppend
from eventstore.statements import (
    APPEND_ONE_CHECKED_FAST,
    APPEND_ONE_FAST,
    BATCH_FAILED,
    CHECKS,
    INSERT_ONE,
    RETURNING,
    Statement,
    append_results,
    batch_insert,
    one_event,
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


# The same for a group-commit batch. Each keyed append's claim is looked up by its primary key
# and locked one at a time, in the arrays' order, which is (actor, key) order: two batches never
# wait for each other's claims crosswise. Per row, not as a join: a connection keeps the plan it
# made for a statement while the table was young, and a join with the batch's arrays was then a
# hash join over a sequential scan of every record, kept as the table grew. Each response goes in
# by its locked row's ctid (a TID scan, however old the plan): nothing but the claim's holder
# writes a new version of a held claim, so the row locked is the row the statement sees. An
# append whose claim is gone is refused like one whose check failed; `held` tells them apart.
_HELD = (
    "held AS (SELECT k.item, x.tid FROM unnest(CAST(:claim_items AS int[]), "
    "CAST(:claim_actors AS text[]), CAST(:claim_keys AS text[]), CAST(:claim_tokens AS uuid[])) "
    "AS k(item, actor, key, token) CROSS JOIN LATERAL (SELECT r.ctid AS tid "
    "FROM idempotency_records r WHERE r.actor = k.actor AND r.key = k.key "
    "AND r.lock_token = k.token AND r.status = 'in_flight' FOR UPDATE) AS x), "
    "refused AS (SELECT item FROM failed UNION SELECT k.item FROM "
    "unnest(CAST(:claim_items AS int[])) AS k(item) WHERE k.item NOT IN (SELECT item FROM held)), "
)
# At most this many keyed appends share a batch: the statement stores each one's response by
# an UPDATE of its own, of one row by ctid (an UPDATE of several rows at once by ctid was planned
# as a sequential scan on a young table, and kept).
KEYED_PER_BATCH = 8
_STORE = (
    "answers AS (SELECT row_number() OVER () AS n, h.tid, CAST(replace(d.response, d.stand_in, "
    "lpad(to_hex(i.txid), 16, '0') || lpad(to_hex(i.position), 16, '0')) AS jsonb) AS response "
    "FROM unnest(CAST(:claim_items AS int[]), CAST(:responses AS text[]), "
    "CAST(:stand_ins AS text[]), CAST(:claim_events AS uuid[])) "
    "AS d(item, response, stand_in, event_id) "
    "JOIN held h ON h.item = d.item JOIN inserted i ON i.event_id = d.event_id), "
    + ", ".join(
        f"done{n} AS (UPDATE idempotency_records r SET status = 'done', locked_until = NULL, "
        f"response = (SELECT a.response FROM answers a WHERE a.n = {n}) "
        f"WHERE r.ctid = (SELECT a.tid FROM answers a WHERE a.n = {n}))"
        for n in range(1, KEYED_PER_BATCH + 1)
    )
    + " SELECT event_id, position, txid, NULL::int AS held FROM inserted "
    "UNION ALL SELECT NULL, NULL, NULL, item FROM held"
)
BATCH_COMPLETING = Statement.of(
    sa.text(
        "WITH "
        + BATCH_FAILED
        + ", "
        + _HELD
        + "inserted AS ("
        + batch_insert("refused")
        + "), "
        + _STORE
    )
)


@dataclass(frozen=True)
class Keyed:
    """A keyed append's part in a statement: its claim, and its response with a stand-in token."""

    actor: str
    key: str
    lock_token: UUID
    response: str
    stand_in: str


def keyed(streams: tuple[StreamAppend, ...], completion: Completion) -> Keyed | None:
    """What a statement needs to store the append's response with it; None if only a
    transaction can (more than one event, or a response using the position otherwise)."""
    if not one_event(streams):
        return None
    rendered = _rendered(streams, completion)
    if rendered is None:
        return None
    claim = completion.claim
    return Keyed(claim.actor, claim.key, claim.lock_token, *rendered)


def completing_statement(
    streams: tuple[StreamAppend, ...], response: Keyed
) -> tuple[Statement, dict[str, Any]]:
    """The append alone, storing its response in the same statement."""
    statement, params = statement_for(streams)
    params |= {
        "claim_actor": response.actor,
        "claim_key": response.key,
        "claim_token": response.lock_token,
        "response": response.response,
        "stand_in": response.stand_in,
    }
    return _COMPLETING[statement], params


def batch_claims(
    responses: Sequence[tuple[int, Keyed]], owners: dict[UUID, int]
) -> dict[str, list[Any]]:
    """The claim arrays of a batch: each keyed append's item, claim, response and event id,
    in (actor, key) order, the order the statement locks the claims in."""
    event_of = {item: event_id for event_id, item in owners.items()}  # one event per keyed one
    responses = sorted(responses, key=lambda pair: (pair[1].actor, pair[1].key))
    return {
        "claim_items": [item for item, _ in responses],
        "claim_actors": [r.actor for _, r in responses],
        "claim_keys": [r.key for _, r in responses],
        "claim_tokens": [r.lock_token for _, r in responses],
        "responses": [r.response for _, r in responses],
        "stand_ins": [r.stand_in for _, r in responses],
        "claim_events": [event_of[item] for item, _ in responses],
    }


def _rendered(streams: tuple[StreamAppend, ...], completion: Completion) -> tuple[str, str] | None:
    """The response as JSON with a stand-in token for the position, and that token; None if
    the response uses the position otherwise than by its token."""
    first = _stand_in()
    text = json.dumps(completion.respond(append_results(streams, [first])))
    if completion.by_token:
        return text, first.token
    second = _stand_in()
    again = json.dumps(completion.respond(append_results(streams, [second])))
    if text.replace(first.token, second.token) != again:
        return None
    return text, first.token


def _stand_in() -> Position:
    """A position no append will have soon, whose token cannot occur by chance."""
    return Position(secrets.randbits(63), secrets.randbits(63))
