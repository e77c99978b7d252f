"""The retry policy: attempts, which errors are retried, delays, and what is raised at the end."""

from __future__ import annotations

import pytest

from core.retry import Backoff, retry

NO_WAIT = Backoff(base=0.0)


class Lost(Exception):
    """A failure worth retrying."""


class Broken(Exception):
    """A failure that is not."""


class GaveUp(Exception):
    """What a caller raises instead once the attempts run out."""


class Flaky:
    """An operation failing with the given errors in turn, then answering with its call count."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


def lost(error: Exception) -> bool:
    return isinstance(error, Lost)


def test_delays_double_from_base_up_to_cap_without_jitter() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    assert [backoff.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_delay_before_any_failure_is_the_base_and_huge_counts_stay_capped() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert backoff.delay(0) == backoff.delay(1) == 0.5
    assert backoff.delay(10_000) == 30.0


def test_jitter_keeps_each_delay_within_its_share_of_the_full_one() -> None:
    half, full = Backoff(base=1.0, cap=8.0, jitter=0.5), Backoff(base=1.0, cap=8.0, jitter=1.0)
    for n in range(1, 8):
        ceiling = min(8.0, 2.0 ** (n - 1))
        halves = [half.delay(n) for _ in range(200)]
        fulls = [full.delay(n) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in halves)
        assert all(0 <= d <= ceiling for d in fulls)
        assert min(fulls) < ceiling / 2  # full jitter does reach below the half-jitter floor
        assert len(set(halves)) > 1


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=1.0, jitter=1.5)


async def test_retries_a_retryable_error_until_the_operation_succeeds() -> None:
    operation = Flaky(Lost("1"), Lost("2"))
    assert await retry(operation, attempts=3, backoff=NO_WAIT, retry_on=lost) == 3
    assert operation.calls == 3


async def test_an_error_the_predicate_refuses_propagates_at_once() -> None:
    operation = Flaky(Lost("1"), Broken("2"), Lost("3"))
    with pytest.raises(Broken):
        await retry(operation, attempts=5, backoff=NO_WAIT, retry_on=lost)
    assert operation.calls == 2


async def test_exhaustion_raises_the_last_error_after_exactly_the_attempts() -> None:
    operation = Flaky(*(Lost(str(n)) for n in range(1, 10)))
    with pytest.raises(Lost, match=r"^4$"):
        await retry(operation, attempts=4, backoff=NO_WAIT, retry_on=lost)
    assert operation.calls == 4


async def test_exhaustion_raises_the_callers_error_caused_by_the_last_one() -> None:
    operation = Flaky(Lost("1"), Lost("2"))
    with pytest.raises(GaveUp) as raised:
        await retry(
            operation,
            attempts=2,
            backoff=NO_WAIT,
            retry_on=lost,
            exhausted=lambda error: GaveUp(f"after {error}"),
        )
    assert str(raised.value) == "after 2"
    assert isinstance(raised.value.__cause__, Lost)


async def test_the_hook_hears_each_retry_before_its_backoff_but_not_the_last_failure() -> None:
    heard: list[tuple[int, str]] = []
    operation = Flaky(Lost("a"), Lost("b"), Lost("c"))
    with pytest.raises(Lost):
        await retry(
            operation,
            attempts=3,
            backoff=NO_WAIT,
            retry_on=lost,
            on_retry=lambda attempt, error: heard.append((attempt, str(error))),
        )
    assert heard == [(1, "a"), (2, "b")]


async def test_sleeps_the_backoffs_delay_for_each_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("core.retry.asyncio.sleep", sleep)
    operation = Flaky(*(Lost(str(n)) for n in range(5)))
    with pytest.raises(Lost):
        await retry(operation, attempts=5, backoff=Backoff(0.1, cap=0.5), retry_on=lost)
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.5])


async def test_a_failure_already_made_counts_as_the_first_attempt() -> None:
    heard: list[int] = []
    operation = Flaky(Lost("2"))
    result = await retry(
        operation,
        attempts=3,
        backoff=NO_WAIT,
        retry_on=lost,
        on_retry=lambda attempt, _: heard.append(attempt),
        failed=Lost("1"),
    )
    assert (result, operation.calls, heard) == (2, 2, [1, 2])


async def test_a_failure_already_made_with_one_attempt_allowed_is_raised_untried() -> None:
    operation = Flaky()
    with pytest.raises(Lost, match=r"^earlier$"):
        await retry(operation, attempts=1, backoff=NO_WAIT, retry_on=lost, failed=Lost("earlier"))
    assert operation.calls == 0


async def test_fewer_than_one_attempt_is_refused() -> None:
    with pytest.raises(ValueError):
        await retry(Flaky(), attempts=0, backoff=NO_WAIT, retry_on=lost)
