"""One retry policy: exponential backoff, and running an operation until it stops losing.

Used wherever a failure is expected to pass by itself: a write that lost a race to another
writer, a batch re-run after a concurrent write, a failing event retried before it is parked,
a supervised task restarted after it failed. Standard library only, so any layer may use it.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# 2.0**1024 overflows a float; any cap in use is reached long before this.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Delays that start at `base`, double per retry up to `cap`, and are jittered.

    `jitter` is the share of each delay left to chance: 0 waits exactly, 0.5 waits between half
    and all of it, 1 anywhere up to all of it ("full jitter", which keeps racing writers from
    colliding again in lockstep).
    """

    base: float
    cap: float = math.inf
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 is the first retry)."""
        exponent = min(max(retry - 1, 0), _MAX_EXPONENT)
        delay = min(self.cap, self.base * 2.0**exponent)
        if self.jitter:
            delay *= random.uniform(1.0 - self.jitter, 1.0)
        return delay


# Told of each failure that will be retried (its attempt number and error), before the backoff.
RetryHook = Callable[[int, Exception], None]


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    backoff: Backoff,
    retry_on: Callable[[Exception], bool],
    on_retry: RetryHook | None = None,
    exhausted: Callable[[Exception], Exception] | None = None,
    failed: Exception | None = None,
) -> T:
    """Run `operation` up to `attempts` times, backing off after each failure `retry_on` accepts.

    An error `retry_on` refuses propagates at once. When the attempts run out, the last error is
    raised again, or `exhausted(last error)` if given. `failed`: the error of a first attempt the
    caller already made, which counts as attempt 1.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    attempt = 0
    while True:
        attempt += 1
        try:
            if attempt == 1 and failed is not None:
                raise failed
            return await operation()
        except Exception as error:
            if not retry_on(error):
                raise
            if attempt >= attempts:
                if exhausted is None:
                    raise
                raise exhausted(error) from error
            if on_retry is not None:
                on_retry(attempt, error)
        # Outside the handler, so the next attempt's error is not chained to this one.
        await asyncio.sleep(backoff.delay(attempt))
