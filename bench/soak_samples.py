"""What the soak samples while the load runs: each process's memory, the projections' lag, and
whether the query API still answers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.command_api import bench_token
from bench.http import Client
from eventstore.inspect import PostgresInspector
from projections.checkpoints import Checkpoints
from subscriptions import SUBSCRIBER_NAMES

SAMPLE_SECONDS = 5.0


@dataclass
class Samples:
    """What the soak saw."""

    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)  # process -> MiB per sample
    lag: list[int] = field(default_factory=list)  # the largest lag of any subscriber
    query_failures: int = 0

    @property
    def errors(self) -> int:
        """Answers that were not 2xx (status 0: the request itself failed)."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (dramatiq forks its worker), in MiB."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) / 1024 if match else 0.0
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack += [int(child) for child in children]
    return total


async def largest_lag(engine: Any, db: Any) -> int:
    """Events the furthest-behind subscriber has still to apply."""
    checkpoints, inspector = Checkpoints(db), PostgresInspector(engine)
    return max(
        [(await inspector.behind(await checkpoints.load(n))).events for n in SUBSCRIBER_NAMES]
    )


async def sample(
    pids: dict[str, int], engine: Any, db: Any, query: str, samples: Samples, stop: asyncio.Event
) -> None:
    """Every few seconds: memory of each process, the largest lag, one query answered."""
    reader = {"Authorization": f"Bearer {bench_token(['queries:read'])}"}
    while not stop.is_set():
        client = Client(query)  # a new connection: the server closes idle keep-alives
        for name, pid in pids.items():
            samples.rss.setdefault(name, []).append(rss_mib(pid))
        samples.lag.append(await largest_lag(engine, db))
        try:
            answer = await client.get("/api/v1/products", params={"size": 5}, headers=reader)
            samples.query_failures += answer.status_code != 200
        except (OSError, EOFError):
            samples.query_failures += 1
        finally:
            await client.aclose()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


async def settle(engine: Any, db: Any, seconds: float) -> float:
    """Seconds until every subscriber is at the head (or `seconds`, if never)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await largest_lag(engine, db) == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    return seconds
