"""examples/feed_consumer.py: killed and restarted while writers write, it ends with every
committed event in its file exactly once, in commit order."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from eventstore.postgres import PostgresEventStore
from tests.feed.conftest import READER
from tests.feed.test_feed_streams import read_everything, write

EXAMPLE = Path(__file__).parents[2] / "examples" / "feed_consumer.py"


def example() -> ModuleType:
    """The example as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("feed_consumer", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start(server: str, out: Path, mode: str) -> subprocess.Popen[bytes]:
    """The consumer as a child process (stopped by the test, by pid)."""
    token = READER["Authorization"].removeprefix("Bearer ")
    argv = [sys.executable, str(EXAMPLE), "--url", server, "--out", str(out), "--mode", mode]
    return subprocess.Popen(
        argv, env={**os.environ, "ORDERTRAIL_TOKEN": token}, stderr=subprocess.DEVNULL
    )


def positions(out: Path) -> list[str]:
    """The position of every line the consumer wrote."""
    if not out.exists():
        return []
    return [json.loads(line)["position"] for line in out.read_bytes().splitlines()]


def checkpoint_of(out: Path) -> str:
    """The consumer's saved checkpoint."""
    return Path(f"{out}.checkpoint").read_text()


@pytest.mark.parametrize("mode", ["sse", "poll"])
async def test_killed_twice_it_still_writes_every_event_once(
    mode: str, server: str, pg_store: PostgresEventStore, tmp_path: Path, clean_db: None
) -> None:
    out = tmp_path / "events.jsonl"
    consumer = start(server, out, mode)
    try:
        async with httpx.AsyncClient(base_url=server) as client:
            began = time.monotonic()
            writers = asyncio.gather(*(write(client, began + 6) for _ in range(4)))
            for kill_at in (1.5, 3.5):  # seconds into the writing
                await asyncio.sleep(max(0.0, began + kill_at - time.monotonic()))
                consumer.send_signal(signal.SIGKILL)  # no chance to tidy up
                consumer.wait()
                consumer = start(server, out, mode)
            await writers
        stored = [e.token for e in await read_everything(pg_store)]
        deadline = time.monotonic() + 30
        while positions(out)[-1:] != stored[-1:]:
            assert time.monotonic() < deadline, "the consumer did not catch up"
            await asyncio.sleep(0.2)
        assert positions(out) == stored
        assert checkpoint_of(out) == stored[-1]
    finally:
        consumer.terminate()
        consumer.wait(10)


def test_a_line_past_the_checkpoint_wins_and_a_half_written_one_is_cut(tmp_path: Path) -> None:
    consumer = example()
    out = tmp_path / "events.jsonl"
    lines = [json.dumps({"position": f"{i:032x}"}) for i in (1, 2, 3)]
    out.write_text("\n".join(lines) + "\n" + '{"position": "0000')  # killed mid-line
    Path(f"{out}.checkpoint").write_text(f"{2:032x}")  # killed before the checkpoint moved
    assert consumer.recover(out) == f"{3:032x}"
    assert out.read_text() == "\n".join(lines) + "\n"
    assert Path(f"{out}.checkpoint").read_text() == f"{3:032x}"
    empty = tmp_path / "none.jsonl"
    assert consumer.recover(empty) is None
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"position": "a" * 32, "pad": "x" * 200_000}) + "\n" + "y" * 70_000)
    assert consumer.recover(big) == "a" * 32 and big.read_text().endswith("}\n")
