"""The dev stack's console link: a one-time code in the fragment, traded for a token once."""

from __future__ import annotations

import pytest

from command_api.app import create_app
from command_api.console import LOGIN_CODE_ENV
from core.auth import verify_token
from core.settings import Settings
from tests.conftest import JWT_SECRET
from tests.support.servers import asgi_client


async def test_the_code_gives_one_token_once_and_only_in_dev_mode(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOGIN_CODE_ENV, "the-code-from-the-banner")
    async with asgi_client(create_app(settings.model_copy(update={"environment": "dev"}))) as api:
        assert (await api.post("/console/login", json={"code": "guess"})).status_code == 401
        traded = await api.post("/console/login", json={"code": "the-code-from-the-banner"})
        assert traded.status_code == 200 and traded.headers["cache-control"] == "no-store"
        principal = verify_token(traded.json()["token"], JWT_SECRET)
        assert principal.subject == "dev" and "ops:admin" in principal.scopes
        again = await api.post("/console/login", json={"code": "the-code-from-the-banner"})
        assert again.status_code == 404 and again.json()["code"] == "not_found"
    async with asgi_client(create_app(settings)) as api:  # ORDERTRAIL_ENV=test: never
        refused = await api.post("/console/login", json={"code": "the-code-from-the-banner"})
        assert refused.status_code == 404
