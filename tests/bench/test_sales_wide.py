"""Figure 8's wide day in a small size: it runs, and no document grows with the SKUs sold."""

from __future__ import annotations

from pathlib import Path

from bench.context import BenchContext
from bench.core import MODES
from bench.sales_wide import RATE, UNITS, measure, wide_day


async def test_the_largest_sales_document_stays_flat_while_the_day_widens(
    pg_admin_url: str, mongodb_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = BenchContext(MODES["smoke"], pg_admin_url, mongodb_url, redis_url, tmp_path)
    try:
        narrow, wide = await measure(ctx, 100), await measure(ctx, 2_000)
        named = await wide_day(ctx, 200)
    finally:
        await ctx.drop_databases()
    assert set(narrow) == set(wide) == set(UNITS)
    assert narrow[RATE] > 0 and wide[RATE] > 0
    # 20 times the SKUs: the old single day document grows with them, no document now does.
    assert wide["day document holding every SKU (before)"] > 15 * narrow["day document"]
    assert wide["largest sales_daily document"] == narrow["largest sales_daily document"]
    assert wide["day document"] <= narrow["day document"] + 8  # wider numbers, same fields
    assert named.largest_document_bytes == narrow["largest sales_daily document"]
    assert named.events_per_second > 0 and named.ceiling_events_per_second > 0
    assert named.day_document_before_bytes > named.day_document_bytes
