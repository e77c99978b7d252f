"""Figure 8's two measurements made by other bench modules, behind the interface it needs.

`bench.scan_memory` runs an ops command in a child process and reports its time and peak RSS;
`bench.sales_wide` projects one day with a given number of distinct SKUs sold and reports the
rate and the largest read-model document. Figure 8 calls them only through `scan` and
`wide_day` here, which say None when this build has not got the module.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

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


def _module(name: str) -> ModuleType | None:
    """`bench.<name>`, or None if this build has none."""
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{name}":
            raise  # the module is there but broken: say so
        return None


async def scan(ctx: BenchContext, env: dict[str, str], *command: str) -> ScanCost | None:
    """`ordertrail COMMAND…` in a child process: its time and peak RSS.

    A command that exits other than 0 fails the figure with the end of its output: a rebuild
    that did not finish or an audit that found holes measured nothing worth reporting.
    """
    module = _module("scan_memory")
    if module is None:
        return None
    log = ctx.workdir / f"{command[0]}-{uuid.uuid4().hex[:6]}.log"
    result = await asyncio.to_thread(module.scan, [ORDERTRAIL, *command], env, log)
    if result.exit_code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"ordertrail {' '.join(command)} exited {result.exit_code}:\n{tail}")
    return ScanCost(result.seconds, result.peak_rss_bytes / 2**20)


async def wide_day(ctx: BenchContext, skus: int) -> WideDay | None:
    """One day with `skus` distinct SKUs sold, projected: rate and largest document."""
    module = _module("sales_wide")
    if module is None:
        return None
    result = await module.wide_day(ctx, skus)
    return WideDay(result.events_per_second, result.largest_document_bytes / 1024)
