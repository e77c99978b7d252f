"""Nothing secret reaches the logs: not the JWT secret, not a token, not a database password."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import httpx
import jwt
import pytest

from command_api.app import create_app
from core.settings import Settings
from tests.conftest import JWT_SECRET
from tests.support.servers import asgi_client

Auth = Callable[..., dict[str, str]]


def secrets_in(text: str, *secrets: str) -> list[str]:
    """Which of `secrets` (or a token's signature alone) appear in `text`."""
    found = [s for s in secrets if s and s in text]
    found += [s for s in secrets if s.count(".") == 2 and s.rsplit(".", 1)[1] in text]
    return found


async def test_requests_with_good_and_bad_tokens_log_no_secret(
    api: httpx.AsyncClient,
    bare_query: httpx.AsyncClient,
    auth: Auth,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Accepted, refused, failing and invalid requests: the logs name none of the credentials."""
    good = auth("commands:write", "queries:read")["Authorization"].removeprefix("Bearer ")
    claims = {"sub": "mallory", "scope": "commands:write", "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, "a-guessed-secret-" + uuid.uuid4().hex, algorithm="HS256")
    expired = auth("commands:write", ttl=-3600)["Authorization"].removeprefix("Bearer ")
    sku = "LOG-" + uuid.uuid4().hex[:6].upper()
    product = {"sku": sku, "name": "n", "price": "1.00", "category": "c"}
    caplog.set_level(logging.DEBUG)
    for token in (good, forged, expired, "garbage." + good):
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        await api.post("/api/v1/products", json=product, headers=headers)  # 201, then 409s
        await api.post("/api/v1/products", content=b"{not json", headers=headers)  # 422
        await api.post(
            "/api/v1/stock/NOPE-1/adjust", json={"delta": -1, "reason": "x"}, headers=headers
        )
        await bare_query.get("/api/v1/products", headers=headers)
        await bare_query.get("/api/v1/orders?status=$where", headers=headers)
    assert caplog.records, "the requests above are expected to log something"
    assert not secrets_in(caplog.text, JWT_SECRET, good, forged, expired)


async def test_an_unreachable_database_is_logged_without_its_password(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Readiness failures name the problem, never the credentials in DATABASE_URL."""
    password = "hunter2-" + uuid.uuid4().hex
    url = f"postgresql+asyncpg://ordertrail:{password}@127.0.0.1:1/ordertrail"
    app = create_app(settings.model_copy(update={"database_url": url}))
    caplog.set_level(logging.DEBUG)
    async with asgi_client(app, "http://api") as client:
        ready = await client.get("/ready")
        command = await client.post(
            "/api/v1/products/" + str(uuid.uuid4()) + "/rename",
            json={"name": "x"},
            headers={"Authorization": "Bearer nope"},
        )
    assert ready.status_code == 503
    assert command.status_code == 401
    assert "readiness check failed" in caplog.text
    assert password not in caplog.text
