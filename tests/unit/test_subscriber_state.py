"""`status`'s verdict per subscriber, from what its owner and the failing workers recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ops.status import subscriber_state

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
OWNER = {"worker": "w1", "pid": 42, "since": NOW}


def test_a_recorded_failure_shows_as_failing_whoever_owns_it() -> None:
    failing = {"failure": {"last_error": "KeyError: 'lines'"}, "alive_at": NOW}
    assert subscriber_state(failing, OWNER, NOW, 30) == "failing"
    assert subscriber_state(failing, None, NOW, 30) == "failing"


def test_without_an_owner_it_is_said_so() -> None:
    assert subscriber_state({"alive_at": NOW}, None, NOW, 30) == "no owner"


def test_an_owner_that_stopped_saying_it_is_alive_is_stalled() -> None:
    old = NOW - timedelta(seconds=31)
    assert subscriber_state({"alive_at": old}, OWNER, NOW, 30) == "stalled"
    assert subscriber_state({}, OWNER, NOW, 30) == "stalled"
    naive = (NOW - timedelta(seconds=5)).replace(tzinfo=None)  # as a tz-unaware client reads it
    assert subscriber_state({"alive_at": naive}, OWNER, NOW, 30) == "running"
