"""Checkpoint saves made together go out together, and each saver learns how its save went."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from eventstore.positions import Position
from projections.checkpoints import Checkpoints
from tests.projections.conftest import Sent


async def test_saves_made_at_once_share_round_trips(watched: tuple[Any, Sent]) -> None:
    db, sent = watched
    checkpoints = Checkpoints(db)
    names = [f"subscriber-{n}" for n in range(6)]
    await asyncio.gather(*(checkpoints.save(n, Position(7, i + 1), 3) for i, n in enumerate(names)))
    # The first goes alone; the rest wait for it and go together.
    assert sent.commands["update"] <= 2
    for i, name in enumerate(names):
        assert await checkpoints.load(name) == Position(7, i + 1)
    await checkpoints.save(names[0], Position(7, 0), 2)  # only forwards; counts still add up
    docs = await checkpoints.all()
    assert (docs[names[0]]["token"], docs[names[0]]["events_seen"]) == (Position(7, 1).token, 5)


async def test_every_saver_of_a_failed_write_hears_of_it() -> None:
    # A server nobody listens on: the write fails, and each save raises instead of hanging.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:9", serverSelectionTimeoutMS=200
    )
    try:
        checkpoints = Checkpoints(client["nowhere"])
        saves = [checkpoints.save(f"s{n}", Position(1, n), 1) for n in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*saves, return_exceptions=True), 10)
        assert all(isinstance(r, PyMongoError) for r in results)
    finally:
        await client.close()
