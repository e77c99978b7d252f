"""What a benchmark reports: measurements with repetitions, ratios, targets met or not."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

ModeName = Literal["smoke", "quick", "full"]


@dataclass(frozen=True)
class Mode:
    """How hard to measure: the smoke mode only proves the harness still runs."""

    name: ModeName
    warmups: int
    repetitions: int
    seconds: float  # length of one timed load run
    scale: float  # multiplies event counts (1.0 = the sizes)

    def count(self, full: int, floor: int = 50) -> int:
        """An event or request count scaled to this mode."""
        return max(floor, int(full * self.scale))


MODES = {
    "smoke": Mode("smoke", warmups=0, repetitions=1, seconds=0.5, scale=0.002),
    "quick": Mode("quick", warmups=1, repetitions=3, seconds=2.0, scale=0.1),
    "full": Mode("full", warmups=1, repetitions=5, seconds=8.0, scale=1.0),
}


@dataclass
class Measurement:
    """One quantity measured several times."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median of the repetitions."""
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        """The smallest repetition."""
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        """The largest repetition."""
        return max(self.values) if self.values else float("nan")


@dataclass(frozen=True)
class Target:
    """A target of the issue and whether this run met it."""

    description: str
    met: bool
    detail: str


@dataclass
class Figure:
    """One numbered figure of BENCHMARKS.md."""

    number: int
    title: str
    measurements: list[Measurement] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def measurement(self, name: str, unit: str) -> Measurement:
        """Get or add a measurement."""
        for found in self.measurements:
            if found.name == name:
                return found
        self.measurements.append(Measurement(name, unit))
        return self.measurements[-1]

    def median(self, name: str) -> float:
        """The median of a named measurement."""
        return next(m.median for m in self.measurements if m.name == name)

    def ratio(self, name: str, numerator: str, denominator: str) -> float:
        """Record and return median(numerator) / median(denominator)."""
        value = self.median(numerator) / self.median(denominator)
        self.ratios[name] = value
        return value

    def target(self, description: str, met: bool, detail: str) -> None:
        """Record a target."""
        self.targets.append(Target(description, met, detail))


async def repeat(
    mode: Mode,
    run: Callable[[], Awaitable[dict[str, float]]],
    figure: Figure,
    units: dict[str, str],
) -> None:
    """Warm up, then run `run` `mode.repetitions` times; each run returns {measurement: value}."""
    for _ in range(mode.warmups):
        await run()
    for _ in range(mode.repetitions):
        for name, value in (await run()).items():
            figure.measurement(name, units[name]).values.append(value)


def check(name: str, got: int, expected: int) -> None:
    """Refuse a measurement that did not process every event."""
    if got != expected:
        raise RuntimeError(f"{name} processed {got} events, expected {expected}")


class Stopwatch:
    """Elapsed seconds of a block."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def open_loop(
    rate: float, seconds: float, send: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """`send(i)` every 1/rate s for `seconds`, each on its own schedule; then wait for all."""
    started, tasks = time.perf_counter(), list[asyncio.Task[None]]()
    for i in range(max(1, round(rate * seconds))):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks, return_exceptions=True)
