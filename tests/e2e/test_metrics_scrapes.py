"""/metrics on the command API: lag comes from a cache, not from a status query per scrape."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

import ops.routes
from command_api.app import create_app
from core.settings import Settings
from tests.support.servers import asgi_client

INTERVAL = 1.0
LAG = re.compile(r'^ordertrail_projection_lag_events\{projection="products"\} (\S+)$', re.M)
FAILURES = re.compile(r"^ordertrail_gauge_refresh_failures_total (\S+)$", re.M)


def gauge(pattern: re.Pattern[str], text: str) -> float:
    """The value of the one sample `pattern` matches."""
    match = pattern.search(text)
    assert match, text
    return float(match.group(1))


async def test_scrapes_compute_lag_at_most_once_per_interval_and_survive_a_failure(
    settings: Settings,
    clean_db: None,
    auth: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, fail = [], asyncio.Event()
    real = ops.routes.gather_status

    async def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(0.05)  # long enough for concurrent scrapes to overlap it
        if fail.is_set():
            raise ConnectionError("store unreachable")
        return await real(*args)

    monkeypatch.setattr(ops.routes, "gather_status", counted)
    app = create_app(settings.model_copy(update={"metrics_refresh_seconds": INTERVAL}))
    async with asgi_client(app, "http://command-api") as api:
        together = await asyncio.gather(*(api.get("/metrics") for _ in range(20)))
        in_a_row = [await api.get("/metrics") for _ in range(20)]
        assert all(r.status_code == 200 for r in together + in_a_row)
        assert len(calls) == 1  # one computation for 40 scrapes within the interval
        before = gauge(LAG, in_a_row[-1].text)

        body = {"sku": "METRIC-1", "name": "m", "price": "1.00", "category": "metrics"}
        assert (await api.post("/api/v1/products", json=body, headers=auth())).status_code == 201
        assert gauge(LAG, (await api.get("/metrics")).text) == before  # cached
        await asyncio.sleep(INTERVAL)
        assert gauge(LAG, (await api.get("/metrics")).text) == before + 1  # refreshed
        assert len(calls) == 2

        failures = gauge(FAILURES, (await api.get("/metrics")).text)
        fail.set()
        await asyncio.sleep(INTERVAL)
        failed = await api.get("/metrics")
        assert failed.status_code == 200 and len(calls) == 3
        assert gauge(LAG, failed.text) == before + 1  # the last value, served
        assert gauge(FAILURES, failed.text) == failures + 1
        assert (await api.get("/metrics")).status_code == 200 and len(calls) == 3
