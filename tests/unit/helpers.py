"""Given-when-then helpers for aggregate tests (no I/O)."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from domain.registry import type_name
from eventstore.serialization import ENVELOPE_FIELDS, to_jsonable


def given(aggregate: Aggregate) -> Aggregate:
    """Treat the aggregate's pending events as history: the test's 'given'."""
    aggregate.collect_events()
    return aggregate


def new_events(aggregate: Aggregate) -> list[tuple[str, dict[str, Any]]]:
    """The events a command produced, as (type name, payload) pairs: the test's 'then'."""
    return [
        (
            type_name(event),
            {k: to_jsonable(v) for k, v in vars(event).items() if k not in ENVELOPE_FIELDS},
        )
        for event in aggregate.collect_events()
    ]
