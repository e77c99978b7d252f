"""A keyed append: the key's claim, the append and its response in one statement.

A command with an Idempotency-Key is decided first and claims its key with its append: the
statement takes the key's record only if the key is free (new, expired, or abandoned in flight
by a crashed request with the same body), inserts the append's events only if it took it, and
stores the command's answer in the record as it takes it. Taking the key, appending and
answering commit together or not at all, in one autocommit round trip, where claiming first
cost a round trip and a commit of its own. A key that is not free leaves nothing appended, and
the store answers with the key's stored answer (a replay) or its conflict.

The answer names the position of the append's event, known only inside the statement. So the
answer is rendered first with a stand-in position, and the statement draws the event's position
from the events' sequence itself and puts its token in the stand-in's place. Only a one-event
append qualifies (all its results carry that event's position), and only an answer that uses the
position through its token alone: rendered again with another stand-in, it must differ exactly
where the token stands. Any other keyed append claims its key first and stores its answer inside
the append's transaction.

Keyed appends join the group commit like any other (batching.py), a key at most once a batch:
the batch statement takes each key in (actor, key) order, so two batches never wait for each
other's keys crosswise, and takes every key before it inserts any event.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from eventstore.base import Completion, IdempotencyKey
from eventstore.positions import Position
from eventstore.records import StreamAppend
from eventstore.statements import BATCH_FAILED, Statement, append_results, one_event

_POSITION = "nextval(pg_get_serial_sequence('events', 'position'))"
_TOKEN = (
    "lpad(to_hex(pg_current_xact_id()::text::bigint), 16, '0') || lpad(to_hex(a.position), 16, '0')"
)
# The keyed appends whose checks pass, each with its event's position drawn ahead (a CTE with a
# volatile function is computed once: the record and the event get the same one).
_ASKED = (
    f"asked AS (SELECT k.*, {_POSITION} AS position FROM unnest(CAST(:key_items AS int[]), "
    "CAST(:key_actors AS text[]), CAST(:key_names AS text[]), CAST(:key_hashes AS text[]), "
    "CAST(:responses AS text[]), CAST(:stand_ins AS text[])) "
    "AS k(item, actor, key, request_hash, response, stand_in) "
    "WHERE k.item NOT IN (SELECT item FROM failed)), "
)
# Each key is taken by the primary key's own conflict check, in (actor, key) order: a key held
# by a transaction still running is waited for, then judged as committed. A record left
# untouched (answered, or in flight and alive) is not returned, and its append inserts nothing.
_TAKEN = (
    "taken AS (INSERT INTO idempotency_records AS r (actor, key, request_hash, status, "
    "lock_token, locked_until, expires_at, response) "
    "SELECT a.actor, a.key, a.request_hash, 'done', gen_random_uuid(), NULL, "
    "now() + make_interval(secs => CAST(:ttl AS float8)), "
    f"CAST(replace(a.response, a.stand_in, {_TOKEN}) AS jsonb) FROM asked a "
    "ORDER BY a.actor, a.key "
    "ON CONFLICT (actor, key) DO UPDATE SET request_hash = excluded.request_hash, "
    "status = 'done', lock_token = excluded.lock_token, locked_until = NULL, "
    "expires_at = excluded.expires_at, created_at = now(), response = excluded.response "
    "WHERE r.expires_at < now() OR (r.status = 'in_flight' AND r.locked_until < now() "
    "AND r.request_hash = excluded.request_hash) RETURNING actor, key), "
    # One row, joined into the events' insert: no event goes in before every key is taken.
    "held AS (SELECT coalesce(array_agg(a.item), '{}') AS items FROM asked a "
    "JOIN taken t ON t.actor = a.actor AND t.key = a.key), "
)
_INSERT = (
    "inserted AS (INSERT INTO events (position, event_id, stream_id, stream_type, version, type, "
    "schema_version, data, metadata, recorded_at) OVERRIDING SYSTEM VALUE "
    f"SELECT coalesce(a.position, {_POSITION}), e.event_id, e.stream_id, e.stream_type, "
    "e.version, e.type, e.schema_version, e.data, e.metadata, e.recorded_at "
    "FROM unnest(CAST(:items AS int[]), "
    "CAST(:event_ids AS uuid[]), CAST(:stream_ids AS uuid[]), CAST(:stream_types AS text[]), "
    "CAST(:versions AS int[]), CAST(:types AS text[]), CAST(:schema_versions AS smallint[]), "
    "CAST(:data AS jsonb[]), CAST(:metadata AS jsonb[]), "
    "CAST(:recorded_ats AS timestamptz[])) WITH ORDINALITY "
    "AS e(item, event_id, stream_id, stream_type, version, type, schema_version, data, "
    "metadata, recorded_at, n) CROSS JOIN held h LEFT JOIN asked a ON a.item = e.item "
    "WHERE e.item NOT IN (SELECT item FROM failed) AND (a.item IS NULL OR e.item = ANY (h.items)) "
    "ORDER BY e.n RETURNING event_id, position, transaction_id::text::bigint AS txid) "
)
# The events in, then each keyed append whose checks passed and whether it took its key.
BATCH_COMPLETING = Statement.of(
    sa.text(
        "WITH "
        + BATCH_FAILED
        + ", "
        + _ASKED
        + _TAKEN
        + _INSERT
        + "SELECT event_id, position, txid, NULL::int AS item, NULL::bool AS taken FROM inserted "
        "UNION ALL SELECT NULL, NULL, NULL, a.item, a.item = ANY (h.items) "
        "FROM asked a CROSS JOIN held h"
    )
)


@dataclass(frozen=True)
class Keyed:
    """A keyed append's part in a statement: its key, and its answer with a stand-in token."""

    actor: str
    key: str
    request_hash: str
    response: str
    stand_in: str


def keyed(streams: tuple[StreamAppend, ...], completion: Completion) -> Keyed | None:
    """What a statement needs to claim the key and store the answer with the append; None if
    only a transaction can (a claim held already, more than one event, or an answer using the
    position otherwise)."""
    key = completion.claim
    if not isinstance(key, IdempotencyKey) or not one_event(streams):
        return None
    rendered = _rendered(streams, completion)
    if rendered is None:
        return None
    return Keyed(key.actor, key.key, key.request_hash, *rendered)


def batch_keys(responses: Sequence[tuple[int, Keyed]], ttl: int) -> dict[str, Any]:
    """The key arrays of a batch: each keyed append's item, key, fingerprint and answer, in
    (actor, key) order, the order the statement takes the keys in; and the keys' lifetime."""
    responses = sorted(responses, key=lambda pair: (pair[1].actor, pair[1].key))
    return {
        "key_items": [item for item, _ in responses],
        "key_actors": [r.actor for _, r in responses],
        "key_names": [r.key for _, r in responses],
        "key_hashes": [r.request_hash for _, r in responses],
        "responses": [r.response for _, r in responses],
        "stand_ins": [r.stand_in for _, r in responses],
        "ttl": ttl,
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
