"""Figure 8's two measurements made by other bench modules, behind the interface it needs.

`bench.scan_memory` runs an ops command in a child process and reports its time and peak RSS;
`bench.sales_wide` projects one day with a given number of distinct SKUs sold and reports the
rate and the largest read-model document. Figure 8 calls them only through `scan` and
`wide_day` here.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import sales_wide, scan_memory
from bench.context import BenchContext

ORDERTRAIL = str(Path(sys.executable).parent / "ordertrail")


@dataclass(frozen=True)
class ScanCost:
    """An ops command's wall time and its process's peak resident memory."""

    seconds: float
    peak_rss_mib: float


@dataclass(frozen=True)
class WideDay:
    """A day of many distinct SKUs: projection rate and the largest document it leaves."""

    events_per_second: float
    largest_document_kib: float


async def scan(ctx: BenchContext, env: dict[str, str], *command: str) -> ScanCost:
    """`ordertrail COMMAND…` in a child process: its time and peak RSS.

    A command that exits other than 0 fails the figure with the end of its output: a rebuild
    that did not finish or an audit that found holes measured nothing worth reporting.
    """
    log = ctx.workdir / f"{command[0]}-{uuid.uuid4().hex[:6]}.log"
    result = await asyncio.to_thread(scan_memory.scan, [ORDERTRAIL, *command], env, log)
    if result.exit_code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"ordertrail {' '.join(command)} exited {result.exit_code}:\n{tail}")
    return ScanCost(result.seconds, result.peak_rss_bytes / 2**20)


async def wide_day(ctx: BenchContext, skus: int) -> WideDay:
    """One day with `skus` distinct SKUs sold, projected: rate and largest document."""
    result = await sales_wide.wide_day(ctx, skus)
    return WideDay(result.events_per_second, result.largest_document_bytes / 1024)
