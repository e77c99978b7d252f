"""What a failed append means: a lost race, an abort worth retrying, or an unknown outcome."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

from eventstore.driver import StatementLost
from eventstore.records import (
    AppendAborted,
    DuplicateEvent,
    OutcomeUnknown,
    StreamAppend,
    WrongExpectedVersion,
)

# Deadlock, serialization failure: the server rolled the transaction back, and running it
# again may well succeed (two group-commit batches, or a batch and another writer, crossed).
_ABORTED = frozenset({"40P01", "40001"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE the server answered with, through SQLAlchemy's wrapper if need be."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def lost_race(exc: BaseException) -> bool:
    """Whether a batch failed on a unique key or was aborted by the server: each of its
    appends must be retried alone, so that one's loss is not every other's."""
    return isinstance(exc, asyncpg.UniqueViolationError) or sqlstate(exc) in _ABORTED


def append_failure(exc: Exception, streams: tuple[StreamAppend, ...]) -> Exception:
    """What a failed append tells its caller: `exc` itself unless the store has a word for it."""
    if "events_stream_version_key" in str(exc) and sqlstate(exc) == "23505":
        # A concurrent writer took a version between our check and our insert.
        return WrongExpectedVersion(streams[0].stream_id, streams[0].expected_version)
    if "events_event_id_key" in str(exc) and sqlstate(exc) == "23505":
        return DuplicateEvent(str(exc))
    if sqlstate(exc) in _ABORTED:
        return AppendAborted(str(exc))
    if isinstance(exc, StatementLost):
        return OutcomeUnknown(str(exc))
    return exc
