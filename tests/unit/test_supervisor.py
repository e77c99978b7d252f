"""The supervisor: any failure is caught, recorded and followed by a restart with backoff."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from pymongo.errors import AutoReconnect

from core.supervisor import Supervisor, TaskEnded, TaskHealth, kind_of
from eventstore.records import StoreUnavailable


class Unlisted(Exception):
    """An error nobody wrote a handler for."""


async def test_a_task_raising_anything_is_restarted_and_its_failure_recorded() -> None:
    stop, runs, seen, recovered = asyncio.Event(), 0, [], asyncio.Event()

    async def flaky(health: TaskHealth) -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise Unlisted(f"run {runs}")
        seen.append((health.attempts, health.last_error, health.failing))
        health.ok()
        recovered.set()
        await stop.wait()

    supervisor = Supervisor(stop, base_delay=0.001)
    supervisor.start("flaky", flaky)
    await asyncio.wait_for(recovered.wait(), 1)
    assert seen == [(3, "Unlisted: run 3", True)]
    health = supervisor.tasks["flaky"]
    assert (health.failing, health.attempts, health.restarts) == (False, 0, 3)
    assert health.last_error == "Unlisted: run 3" and health.last_kind == "unexpected"
    stop.set()
    await asyncio.wait_for(supervisor.join(), 1)


async def test_a_task_that_returns_by_itself_is_restarted() -> None:
    stop, runs = asyncio.Event(), 0

    async def quits(health: TaskHealth) -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            stop.set()

    supervisor = Supervisor(stop, base_delay=0.001)
    supervisor.start("quits", quits)
    await asyncio.wait_for(supervisor.join(), 1)
    assert runs == 3
    assert supervisor.tasks["quits"].last_error is not None
    assert TaskEnded.__name__ in supervisor.tasks["quits"].last_error


async def test_failures_are_told_to_the_listener_even_when_it_fails_itself() -> None:
    stop, told = asyncio.Event(), []

    async def listener(health: TaskHealth, error: BaseException) -> None:
        told.append((health.name, health.attempts, type(error).__name__))
        if len(told) == 1:
            raise AutoReconnect("the store that records failures is down too")
        stop.set()

    async def fails(_: TaskHealth) -> None:
        raise Unlisted("boom")

    supervisor = Supervisor(stop, base_delay=0.001, on_failure=listener)
    supervisor.start("fails", fails)
    await asyncio.wait_for(supervisor.join(), 1)
    assert told == [("fails", 1, "Unlisted"), ("fails", 2, "Unlisted")]


async def test_unhealthy_lists_tasks_failing_for_longer_than_the_limit() -> None:
    stop = asyncio.Event()

    async def fails(_: TaskHealth) -> None:
        raise Unlisted("boom")

    async def fine(health: TaskHealth) -> None:
        await stop.wait()

    supervisor = Supervisor(stop, base_delay=0.001, max_delay=0.01)
    supervisor.start("fails", fails)
    supervisor.start("fine", fine)
    await asyncio.sleep(0.1)
    assert [h.name for h in supervisor.unhealthy(0.05)] == ["fails"]
    assert supervisor.unhealthy(60) == []
    stop.set()
    await asyncio.wait_for(supervisor.join(), 1)


def test_backoff_doubles_and_is_capped_lower_for_outages() -> None:
    supervisor = Supervisor(asyncio.Event(), base_delay=1.0, max_delay=30.0)
    health = TaskHealth("t")
    delays = []
    for _ in range(8):
        health.failed(Unlisted("x"), "unexpected")
        delays.append(supervisor.delay(health))
    assert all(0.5 * min(30, 2**i) <= d <= min(30, 2**i) for i, d in enumerate(delays))
    assert max(delays) <= 30
    health.failed(AutoReconnect("x"), "infrastructure")
    assert supervisor.delay(health) <= supervisor.max_infrastructure_delay


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (AutoReconnect("mongo went away"), "infrastructure"),
        (StoreUnavailable("postgres went away"), "infrastructure"),
        (ConnectionResetError(), "infrastructure"),
        (asyncpg.CannotConnectNowError("starting up"), "infrastructure"),
        (KeyError("lines"), "unexpected"),
        (OverflowError("MongoDB can only handle up to 8-byte ints"), "unexpected"),
        (Unlisted(), "unexpected"),
    ],
)
def test_outages_are_told_from_everything_else(error: Exception, kind: str) -> None:
    assert kind_of(error) == kind


def test_an_error_raised_from_an_outage_is_an_outage() -> None:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert kind_of(wrapped) == "infrastructure"
