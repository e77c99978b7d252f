"""A wake-up signal goes out at once after a quiet spell, and at most once per interval."""

from __future__ import annotations

import asyncio
import itertools
import time

from eventstore.notify import Coalescer
from eventstore.positions import Position


async def test_a_steady_stream_of_appends_sends_once_per_interval() -> None:
    sent: list[tuple[float, Position]] = []

    async def send(position: Position) -> None:
        sent.append((time.monotonic(), position))

    coalescer = Coalescer(send, "test", min_interval=0.1)
    coalescer.start()
    try:
        started = time.monotonic()
        coalescer.signal(Position(1, 1))
        await asyncio.sleep(0.02)
        assert [p for _, p in sent] == [Position(1, 1)]  # the first goes out at once
        assert sent[0][0] - started < 0.02
        for n in range(2, 40):  # 38 signals over ~0.38 s
            coalescer.signal(Position(1, n))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)
    finally:
        await coalescer.stop()
    assert 4 <= len(sent) <= 6  # one per 100 ms, not one per signal
    assert sent[-1][1] == Position(1, 39)  # the newest position is never lost
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sent)]
    assert min(gaps) >= 0.095


async def test_without_an_interval_every_quiet_signal_is_sent() -> None:
    sent: list[Position] = []

    async def send(position: Position) -> None:
        sent.append(position)

    coalescer = Coalescer(send, "test")
    coalescer.start()
    try:
        for n in range(1, 4):
            coalescer.signal(Position(1, n))
            await asyncio.sleep(0.01)
    finally:
        await coalescer.stop()
    assert sent == [Position(1, 1), Position(1, 2), Position(1, 3)]
