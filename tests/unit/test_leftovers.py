"""A test cut off by its timeout does not leave its servers running for the tests after it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

INNER = """
import subprocess
import time

import pytest


@pytest.mark.timeout(2)
def test_starts_a_server_then_hangs(tmp_path_factory):
    child = subprocess.Popen(["sh", "-c", "sleep 300 & echo $! > {pids}.grandchild; sleep 300"])
    with open("{pids}", "w") as out:
        out.write(f"{{child.pid}}\\n")
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_timed_out_test_s_children_and_grandchildren_are_ended(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER.format(pids=pids)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider"]
    argv += ["--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_inner.py")]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "Timeout" in result.stdout + result.stderr, result.stdout[-2000:]
    deadline = time.monotonic() + 10
    while not pids.with_suffix(".grandchild").exists():  # the shell writes it when it runs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = [int(pids.read_text()), int(pids.with_suffix(".grandchild").read_text())]
    assert len(started) == 2  # the shell the test started, and the sleep the shell started
    assert not [pid for pid in started if _alive(pid)]
