"""Snapshots through the product: the command API takes them, `ordertrail snapshots drop`
removes them, and a cold command API answers the same either way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from command_api.app import create_app
from core.settings import Settings
from domain.values import stock_item_id
from tests.ops.conftest import Cli
from tests.support.servers import asgi_client

Auth = Callable[..., dict[str, str]]
INTERVAL = 20


async def snapshot_versions(engine: AsyncEngine, *streams: uuid.UUID) -> dict[uuid.UUID, int]:
    """The snapshotted version of each stream that has a snapshot."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT stream_id, version FROM snapshots WHERE stream_id = ANY(:ids)"),
            {"ids": list(streams)},
        )
        return {row.stream_id: row.version for row in rows}


async def too_big_adjustment(client: httpx.AsyncClient, auth: Auth, sku: str) -> tuple[int, str]:
    """A decision that appends nothing and quotes the stored state: adjusting below zero."""
    response = await client.post(
        f"/api/v1/stock/{sku}/adjust", json={"delta": -999_999, "reason": "probe"}, headers=auth()
    )
    return response.status_code, response.json()["detail"]


async def test_snapshots_are_taken_dropped_and_change_no_answer(
    settings: Settings, engine: AsyncEngine, clean_db: None, cli: Cli, auth: Auth
) -> None:
    snapshotting = settings.model_copy(update={"snapshot_interval": INTERVAL})
    skus = [f"SNAP-{uuid.uuid4().hex[:6].upper()}" for _ in range(2)]
    streams = [stock_item_id(sku) for sku in skus]
    async with asgi_client(create_app(snapshotting)) as client:
        for sku in skus:
            registered = await client.post(
                "/api/v1/products",
                json={"sku": sku, "name": "Jar", "price": "1.00", "category": "kitchen"},
                headers=auth(),
            )
            assert registered.status_code == 201, registered.text
            for n in range(2 * INTERVAL + 5):
                received = await client.post(
                    f"/api/v1/stock/{sku}/receive",
                    json={"quantity": 1 + n % 3, "reference": f"PO-{n}"},
                    headers=auth(),
                )
                assert received.status_code in (200, 201), received.text
        for _ in range(100):  # written off the commands' path: shortly after
            if await snapshot_versions(engine, *streams) == dict.fromkeys(streams, 2 * INTERVAL):
                break
            await asyncio.sleep(0.05)
        assert await snapshot_versions(engine, *streams) == dict.fromkeys(streams, 2 * INTERVAL)

    async def cold_answers() -> list[tuple[int, str]]:
        async with asgi_client(create_app(snapshotting)) as client:
            return [await too_big_adjustment(client, auth, sku) for sku in skus]

    before = await cold_answers()
    assert all(status == 409 for status, _ in before), before

    one = await cli("snapshots", "drop", "--stream", str(streams[0]))
    assert one.returncode == 0, one.stderr
    assert "1 snapshot(s) dropped" in one.stdout
    assert await snapshot_versions(engine, *streams) == {streams[1]: 2 * INTERVAL}
    assert await cold_answers() == before

    every = await cli("snapshots", "drop")
    assert every.returncode == 0 and "snapshot(s) dropped" in every.stdout, every.stderr
    assert await snapshot_versions(engine, *streams) == {}
    assert await cold_answers() == before
