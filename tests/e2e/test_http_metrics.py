"""http_request_duration_seconds on the command API: by route template, method and status,
fast path included; unmatched paths share one label; event streams are not timed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import httpx

from tests.e2e.helpers import PRODUCTS, new_sku

Auth = Callable[..., dict[str, str]]
RENAMED = (
    "ordertrail_append_seconds",
    "ordertrail_query_seconds",
    "ordertrail_projection_batch_seconds",
)


def count(text: str, route: str, method: str, status: int) -> float:
    """The histogram's _count for one label set (0 if absent)."""
    labels = f'method="{method}",route="{route}",status="{status}"'
    found = re.search(
        r"^http_request_duration_seconds_count\{" + re.escape(labels) + r"\} (\S+)$",
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


async def test_commands_and_errors_are_timed_by_route_method_and_status(
    api: httpx.AsyncClient, auth: Auth
) -> None:
    before = (await api.get("/metrics")).text
    body = {"sku": new_sku(), "name": "Timed", "price": "2.00", "category": "x"}
    created = await api.post(PRODUCTS, json=body, headers=auth())  # the fast path serves it
    assert created.status_code == 201
    rename = f"{PRODUCTS}/{{product_id}}/rename"
    missing = await api.post(
        f"{PRODUCTS}/{uuid.uuid4()}/rename", json={"name": "x"}, headers=auth()
    )
    assert missing.status_code == 404
    invalid = await api.post(PRODUCTS, json={"sku": ""}, headers=auth())
    assert invalid.status_code == 422
    for path in (f"/no/such/{uuid.uuid4()}", f"/nor/this/{uuid.uuid4()}"):
        assert (await api.get(path)).status_code == 404
    after = (await api.get("/metrics")).text

    assert count(after, PRODUCTS, "POST", 201) == count(before, PRODUCTS, "POST", 201) + 1
    assert count(after, rename, "POST", 404) == count(before, rename, "POST", 404) + 1
    assert count(after, PRODUCTS, "POST", 422) == count(before, PRODUCTS, "POST", 422) + 1
    assert count(after, "unmatched", "GET", 404) == count(before, "unmatched", "GET", 404) + 2
    assert "/no/such/" not in after  # raw paths never become label values
    assert 'http_request_duration_seconds_bucket{le="0.001",method="POST"' in after
    for old in RENAMED:
        assert old not in after, old
    assert "ordertrail_append_duration_seconds_count" in after
