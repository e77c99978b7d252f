"""A closed-loop HTTP load generator: N connections, each sending its next request on a reply.

Every side of a comparison (product and ceiling) runs under this same generator, so the
generator's own cost is in both and the ratios stay fair.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from bench.core import percentile
from bench.http import Client, Response

Request = Callable[[Client, int], Awaitable[Response]]


@dataclass
class LoadResult:
    """What one load run saw."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        return percentile(self.latencies, q) * 1000


async def closed_loop(
    base_url: str, request: Request, connections: int = 16, seconds: float = 3.0, limit: int = 10**9
) -> LoadResult:
    """Run `request(client, n)` from `connections` loops for `seconds` (or `limit` requests)."""
    result, counter = LoadResult(), iter(range(limit))
    clients = [Client(base_url) for _ in range(connections)]  # one keep-alive connection each
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    try:
        await asyncio.gather(*(_loop(c, request, counter, deadline, result) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    result.seconds = time.perf_counter() - started
    return result


async def _loop(
    client: Client, request: Request, counter: Iterator[int], deadline: float, result: LoadResult
) -> None:
    for n in counter:
        if time.perf_counter() >= deadline:
            return
        sent = time.perf_counter()
        try:
            status = (await asyncio.wait_for(request(client, n), 30)).status_code
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            status = 0
            await client.aclose()
        result.latencies.append(time.perf_counter() - sent)
        result.requests += 1
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if not 200 <= status < 300:
            result.errors += 1
