"""The checkpoint watcher is supervised: an error nobody listed restarts it, never stops it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from query_api.freshness import CheckpointWatcher


async def test_a_watcher_whose_poll_raises_is_restarted_and_polls_again(
    mongo_db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = CheckpointWatcher(mongo_db, idle=0.01, busy=0.005)
    real, calls = watcher.refresh, 0

    async def breaks_twice() -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ZeroDivisionError("a bug in the poll")
        return await real()

    monkeypatch.setattr(watcher, "refresh", breaks_twice)
    watcher.start()
    try:
        assert watcher.supervisor is not None
        health = watcher.supervisor.tasks["checkpoint-watcher"]
        for _ in range(200):
            if calls > 4 and not health.failing:
                break
            await asyncio.sleep(0.01)
        assert calls > 4 and health.restarts == 2 and not health.failing
        assert health.last_error == "ZeroDivisionError: a bug in the poll"
    finally:
        await watcher.stop()
