"""The ops scans' cost: `ordertrail rebuild --all` and `ordertrail audit --all`, time and peak RSS.

Each runs as the operator runs it, a child process of its own, so its peak resident set is the
kernel's own figure for that process (`wait4`'s `ru_maxrss`), imports and all. `measure_scans`
is what figure 8 calls on the empty and the deep store; run as a module it seeds stores of
the given sizes with `bench.order_mix` and prints the figures side by side:

    python -m bench.scan_memory 50000 200000
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from bench.context import BenchContext, services
from bench.core import MODES
from bench.order_mix import seed_orders
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from projections.registry import PROJECTIONS
from workers.rebuild import OLD_GENERATION_GRACE_SECONDS

ORDERTRAIL = str(Path(sys.executable).parent / "ordertrail")
REBUILD, AUDIT = ("rebuild", "--all"), ("audit", "--all", "--json")
# A rebuild waits this long per projection before dropping the old generation (readers may
# still hold its name): idle time inside the rebuild's seconds.
REBUILD_GRACE_SECONDS = OLD_GENERATION_GRACE_SECONDS * len(PROJECTIONS)


@dataclass(frozen=True)
class ScanCost:
    """One ops command run to its end: how long it took and its peak resident set."""

    command: str
    seconds: float
    peak_rss_mib: float
    exit_code: int
    log: Path  # its output


def run_measured(args: tuple[str, ...], env: dict[str, str], log: Path) -> ScanCost:
    """`ordertrail ARGS` in a child process, its output to `log`; time and peak RSS."""
    with log.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen([ORDERTRAIL, *args], env=env, stdout=out, stderr=out)
        # wait4, not wait: it returns the child's own resource usage, peak RSS (KiB) included.
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return ScanCost(" ".join(args), seconds, usage.ru_maxrss / 1024, child.returncode, log)


async def measure_scans(
    ctx: BenchContext, database_url: str, mongodb_db: str | None = None
) -> dict[str, ScanCost]:
    """Rebuild every projection, then audit them all (each a child process): their costs.

    The rebuild also brings every read model to the head, so the audit that follows checks
    complete views (its exit code is 1 if it found a hole). `mongodb_db` defaults to a new
    database; the rebuild's seconds include REBUILD_GRACE_SECONDS of waiting.
    """
    env = ctx.env(database_url, mongodb_db or f"scan_{uuid.uuid4().hex[:10]}")
    costs = {}
    for args in (REBUILD, AUDIT):
        log = ctx.workdir / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        costs[args[0]] = await asyncio.to_thread(run_measured, args, env, log)
    return costs


async def seeded(ctx: BenchContext, events: int) -> tuple[str, int]:
    """A fresh database holding an order mix of about `events` events; its URL and size."""
    url = await ctx.fresh_database()
    engine = create_async_engine(url, pool_size=2)
    try:
        written = await seed_orders(PostgresEventStore(engine), events) if events else 0
    finally:
        await dispose(engine)
    return url, written


async def compare(sizes: list[int]) -> list[tuple[int, dict[str, ScanCost]]]:
    """Seed a store of each size and measure its scans."""
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="ordertrail-scans-") as work,
        services(MODES["full"], Path(work)) as ctx,
    ):
        try:
            for size in sizes:
                url, written = await seeded(ctx, size)
                results.append((written, await measure_scans(ctx, url)))
        finally:
            await ctx.drop_databases()
    return results


def main(argv: list[str]) -> int:
    """Print the scans' time and peak RSS for stores of the sizes given."""
    for written, costs in asyncio.run(compare([int(size) for size in argv] or [0, 50_000])):
        for cost in costs.values():
            print(
                f"{written:>9,} events  {cost.command:<16} {cost.seconds:8.1f} s  "
                f"peak RSS {cost.peak_rss_mib:7.1f} MiB  exit {cost.exit_code}"
            )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main(sys.argv[1:]))
