"""The scans' measurement runs the operator's commands on a seeded store and reads their cost."""

from __future__ import annotations

from pathlib import Path

from bench.context import BenchContext
from bench.core import MODES
from bench.scan_memory import AUDIT, REBUILD, measure_scans, seeded


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
        assert cost.exit_code == 0, cost.log.read_text()[-2000:]
        assert 20 < cost.peak_rss_mib < 2_000 and cost.seconds > 0
