"""The benchmark harness still runs end to end (its smallest mode; speed is not asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FIGURES = [1, 2, 3, 4, 5, 6, 7, 9]  # every figure a plain run makes; figure 8 needs --scale


@pytest.fixture
def bench_env(pg_admin_url: str, mongodb_url: str, redis_url: str) -> dict[str, str]:
    """The bench's environment on the test servers."""
    return {
        **os.environ,
        "BENCH_DATABASE_URL": pg_admin_url,
        "BENCH_MONGODB_URL": mongodb_url,
        "BENCH_REDIS_URL": redis_url,
    }


def bench(env: dict[str, str], report: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench --smoke ARGS --output REPORT`."""
    argv = [sys.executable, "-m", "bench", "--smoke", *args, "--output", str(report)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=280, check=False)


def section(text: str, number: int) -> list[str]:
    """The measurement rows of a figure's section, each with a numeric median."""
    body = text.split(f"## {number}. ", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 1, f"figure {number} has no measurements"
    for row in rows[1:]:
        median = row.split("|")[2].strip()
        assert re.match(r"^[0-9][0-9,.]*$", median), f"figure {number}: {row}"
    return rows[1:]


def target_figures(text: str) -> set[int]:
    """The figures with a row in the targets table."""
    return {int(line.split("|")[1]) for line in text.splitlines() if re.match(r"^\| \d \| ", line)}


def test_bench_smoke_writes_every_figure(bench_env: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    run = bench(bench_env, report)
    assert run.returncode == 0, run.stderr[-3000:]
    text = report.read_text()
    for number in FIGURES:
        section(text, number)
    assert target_figures(text) == set(FIGURES)
    assert "| cores |" in text and "| postgresql |" in text
    keyed = [row for row in section(text, 1) if row.startswith("| command API with keys |")]
    assert keyed, "figure 1 lost its keyed command mix"
    lengths = " ".join(section(text, 7))
    for side in ("no snapshots", "snapshots"):
        for what in ("cold command", "warm command", "aggregate memory"):
            for length in ("10 events", "1,000 events"):
                assert f"{what}, {length}, {side} |" in lengths, (what, length, side)
    tail = "cold load, snapshot + tail of 99 events (interval 100), 1,000 events |"
    assert tail in lengths and "snapshot save, 1,000 events |" in lengths


def test_bench_scale_smoke_writes_figure_8(bench_env: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    run = bench(bench_env, report, "--scale", "--only", "8")
    assert run.returncode == 0, run.stderr[-3000:]
    text = report.read_text()
    names = [row.split("|")[1].strip() for row in section(text, 8)]
    sides = ("read_all + decode", "rebuild every projection", "bulk_write ceiling as events")
    for where in ("small store", "at depth"):
        for what in sides:
            assert f"{what}, {where}" in names, (what, where)
    assert "batch append into an empty store" in names and "batch append at depth" in names
    assert target_figures(text) == {8}
    targets = [line for line in text.splitlines() if line.startswith("| 8 | ")]
    assert any("batch append at depth" in line for line in targets)
    assert any("rebuild of every projection" in line for line in targets)


def test_figure_8_only_with_scale(tmp_path: Path) -> None:
    run = bench(dict(os.environ), tmp_path / "BENCHMARKS.md", "--only", "8")
    assert run.returncode == 2
    assert "figure 8 runs with --scale" in run.stderr
    assert not (tmp_path / "BENCHMARKS.md").exists()
