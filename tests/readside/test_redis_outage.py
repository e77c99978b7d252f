"""Redis down: commands still succeed; a real dramatiq worker keeps the read models current."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pymongo.asynchronous.database import AsyncDatabase

from command_api.app import create_app
from core.settings import Settings
from tests.support.processes import dramatiq_worker
from tests.support.redis import OwnRedis
from tests.support.servers import asgi_client

Db = AsyncDatabase[dict[str, Any]]
Auth = Callable[..., dict[str, str]]


@pytest.fixture
def worker(
    settings: Settings, mongodb_url: str, mongo_db: Db, own_redis: OwnRedis, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A dramatiq worker process (`dramatiq workers.actors`) on the test's stores."""
    env = {
        "DATABASE_URL": settings.database_url,
        "MONGODB_URL": mongodb_url,
        "MONGODB_DB": mongo_db.name,
        "REDIS_URL": own_redis.url,
        "JWT_SECRET": "unused-by-workers-" + "x" * 16,
        "PROJECTION_TICK_SECONDS": "0.2",
    }
    with dramatiq_worker(env, tmp_path / "worker.log") as process:
        yield process


@pytest.fixture
async def api_on_own_redis(
    settings: Settings, own_redis: OwnRedis
) -> AsyncIterator[httpx.AsyncClient]:
    """The command API signalling through the test's own Redis."""
    app = create_app(settings.model_copy(update={"redis_url": own_redis.url}))
    async with asgi_client(app, "http://api") as client:
        yield client


async def projected(db: Db, sku: str, seconds: float = 20) -> dict[str, Any]:
    """Wait for the product document of `sku`."""
    deadline = time.monotonic() + seconds
    while (doc := await db["products"].find_one({"sku": sku})) is None:
        assert time.monotonic() < deadline, f"{sku} never reached the read model"
        await asyncio.sleep(0.1)
    return doc


async def register(api: httpx.AsyncClient, headers: dict[str, str], sku: str) -> int:
    """Register a product; the status code."""
    body = {"sku": sku, "name": sku, "price": "1.00", "category": "c"}
    return (await api.post("/api/v1/products", json=body, headers=headers)).status_code


async def test_commands_succeed_while_redis_is_down_and_the_worker_catches_up(
    api_on_own_redis: httpx.AsyncClient,
    auth: Auth,
    mongo_db: Db,
    own_redis: OwnRedis,
    worker: subprocess.Popen[bytes],
    clean_db: None,
) -> None:
    assert await register(api_on_own_redis, auth(), "BEFORE") == 201
    await projected(mongo_db, "BEFORE")

    own_redis.stop()
    started = time.monotonic()
    statuses = [await register(api_on_own_redis, auth(), f"DOWN-{i}") for i in range(5)]
    assert statuses == [201] * 5
    assert time.monotonic() - started < 5  # the failed signal never blocks a command

    own_redis.start()
    for i in range(5):
        await projected(mongo_db, f"DOWN-{i}")
    assert await register(api_on_own_redis, auth(), "AFTER") == 201
    await projected(mongo_db, "AFTER")
    assert worker.poll() is None  # the worker rode the outage out


async def test_each_burst_of_appends_sends_a_small_appended_message(
    api_on_own_redis: httpx.AsyncClient, auth: Auth, own_redis: OwnRedis
) -> None:
    body = {"sku": "SIGNAL-1", "name": "s", "price": "1.00", "category": "c"}
    response = await api_on_own_redis.post("/api/v1/products", json=body, headers=auth())
    token = response.headers["X-Position"]
    client = redis.Redis.from_url(own_redis.url)
    deadline = time.monotonic() + 5
    while not (messages := client.hvals("dramatiq:ordertrail.msgs")):
        assert time.monotonic() < deadline, "no message reached Redis"
        await asyncio.sleep(0.05)
    decoded = [json.loads(m) for m in messages]
    assert {(m["actor_name"], tuple(m["args"])) for m in decoded} == {("appended", (token,))}
