"""The scans' measurement: a child's own peak RSS, and the operator's commands on a seeded store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.context import BenchContext
from bench.core import MODES
from bench.scan_memory import AUDIT, REBUILD, measure_scans, scan, seeded


def test_scan_reports_the_child_s_own_peak_and_exit_code(tmp_path: Path) -> None:
    grow = "x = b'1' * (200 * 2**20); print(len(x)); raise SystemExit(3)"
    cost = scan([sys.executable, "-c", grow], dict(os.environ), tmp_path / "grow.log")
    assert 200 <= cost.peak_rss_mib < 400, cost
    assert cost.exit_code == 3 and cost.seconds > 0
    assert (tmp_path / "grow.log").read_text().strip() == str(200 * 2**20)
    small = scan([sys.executable, "-c", "pass"], dict(os.environ))
    assert small.peak_rss_mib < 100 and small.exit_code == 0  # this process's size is not its


async def test_rebuild_and_audit_of_an_order_mix_are_measured(
    pg_admin_url: str, mongodb_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = BenchContext(MODES["smoke"], pg_admin_url, mongodb_url, redis_url, tmp_path)
    try:
        url, written = await seeded(ctx, 3_000)
        costs = await measure_scans(ctx, url)
    finally:
        await ctx.drop_databases()
    assert written >= 3_000
    assert list(costs) == [REBUILD[0], AUDIT[0]]
    for cost in costs.values():
        # Both ran to the end: the rebuilt views of the mix have no hole.
        assert cost.log is not None and cost.exit_code == 0, cost.log and cost.log.read_text()
        assert 20 < cost.peak_rss_mib < 2_000 and cost.seconds > 0
