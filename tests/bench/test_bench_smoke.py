"""The benchmark harness still runs end to end (its smallest mode; speed is not asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

FIGURES = range(1, 7)


def test_bench_smoke_writes_every_figure(
    pg_admin_url: str, mongodb_url: str, redis_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "BENCHMARKS.md"
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": pg_admin_url,
        "BENCH_MONGODB_URL": mongodb_url,
        "BENCH_REDIS_URL": redis_url,
    }
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    text = report.read_text()
    for number in FIGURES:
        section = text.split(f"## {number}. ", 1)[1].split("\n## ", 1)[0]
        rows = [
            line for line in section.splitlines() if line.startswith("| ") and "---" not in line
        ]
        assert len(rows) > 1, f"figure {number} has no measurements"
        for row in rows[1:]:
            median = row.split("|")[2].strip()
            assert re.match(r"^[0-9][0-9,.]*$", median), f"figure {number}: {row}"
    targets = [line for line in text.splitlines() if re.match(r"^\| [1-6] \| ", line)]
    assert {int(line.split("|")[1]) for line in targets} == set(FIGURES)
    assert "| cores |" in text and "| postgresql |" in text
