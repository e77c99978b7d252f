"""The ops scans' cost: `ordertrail rebuild --all` and `ordertrail audit --all`, time and peak RSS.

Each runs as the operator runs it, a child process of its own, so its peak resident set is the
kernel's own figure for that process (`wait4`'s `ru_maxrss`), imports and all. Figure 8 calls
`scan` for each command; `measure_scans` runs both on one store. Run as a module, it seeds
stores of the given sizes with `bench.order_mix` and prints their figures side by side:

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
    """One command run to its end: how long it took and its peak resident set."""

    command: str
    seconds: float
    peak_rss_bytes: int
    exit_code: int
    log: Path | None  # its output, if kept

    @property
    def peak_rss_mib(self) -> float:
        """The peak resident set in MiB."""
        return self.peak_rss_bytes / 2**20


# Runs the command as its own child and writes "<peak RSS KiB> <exit code>" to argv[1]. The
# command's peak is only its own from a small parent: ru_maxrss keeps the largest resident set
# the process had, and before its exec that is the image it was forked (or vforked) from.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def scan(argv: list[str], env: dict[str, str], log: Path | None = None) -> ScanCost:
    """`argv` in a child process, its output to `log` (else discarded): time and peak RSS."""
    with tempfile.TemporaryDirectory() as scratch, open(log or os.devnull, "wb") as out:
        report = Path(scratch) / "report"
        launch = [sys.executable, "-c", _LAUNCHER, str(report), *argv]
        started = time.perf_counter()
        subprocess.run(launch, env=env, stdout=out, stderr=out, check=True)
        seconds = time.perf_counter() - started
        peak_kib, exit_code = (int(field) for field in report.read_text().split())
    command = " ".join([Path(argv[0]).name, *argv[1:]])
    return ScanCost(command, seconds, peak_kib * 1024, exit_code, log)


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
        costs[args[0]] = await asyncio.to_thread(scan, [ORDERTRAIL, *args], env, log)
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
