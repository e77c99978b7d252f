"""CORS for browser dashboards: off by default, and only for the origins CORS_ORIGINS names."""

from __future__ import annotations

from collections.abc import Callable

from command_api.app import create_app
from core.settings import Settings
from query_api.app import create_app as create_query_app
from tests.e2e.helpers import PRODUCTS, new_sku
from tests.support.servers import asgi_client

DASHBOARD, STRANGER = "https://dash.shop.test", "https://evil.test"


def preflight(origin: str, method: str, *headers: str) -> dict[str, str]:
    """The headers of a browser's preflight request."""
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ", ".join(headers),
    }


async def test_a_named_origin_may_send_commands_and_read_the_position_header(
    settings: Settings, auth: Callable[..., dict[str, str]]
) -> None:
    """Preflight allowed for the dashboard's origin; the command's answer exposes X-Position."""
    app = create_app(settings.model_copy(update={"cors_origins": f"{DASHBOARD}, https://x.test"}))
    async with asgi_client(app) as api:
        asked = preflight(DASHBOARD, "POST", "authorization", "content-type", "idempotency-key")
        response = await api.options(PRODUCTS, headers=asked)
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == DASHBOARD
        allowed = response.headers["access-control-allow-headers"].lower()
        assert {"authorization", "idempotency-key"} <= set(allowed.replace(" ", "").split(","))
        assert "access-control-allow-credentials" not in response.headers

        body = {"sku": new_sku(), "name": "Lamp", "price": "9.50", "category": "home"}
        created = await api.post(PRODUCTS, json=body, headers=auth() | {"Origin": DASHBOARD})
        assert created.status_code == 201, created.text
        assert created.headers["access-control-allow-origin"] == DASHBOARD
        exposed = created.headers["access-control-expose-headers"].lower()
        assert "x-position" in exposed and "etag" in exposed

        refused = await api.options(PRODUCTS, headers=preflight(STRANGER, "POST"))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        other = await api.post(PRODUCTS, json=body, headers=auth() | {"Origin": STRANGER})
        assert "access-control-allow-origin" not in other.headers


async def test_cors_is_off_unless_configured(settings: Settings) -> None:
    """Without CORS_ORIGINS no answer carries Access-Control-* headers."""
    assert settings.cors_origins == ""
    async with asgi_client(create_app(settings)) as api:
        response = await api.options(PRODUCTS, headers=preflight(DASHBOARD, "POST"))
        assert "access-control-allow-origin" not in response.headers
        probe = await api.get("/health", headers={"Origin": DASHBOARD})
        assert "access-control-allow-origin" not in probe.headers


async def test_the_query_api_exposes_the_read_position_to_a_named_origin(
    read_settings: Settings, reader: dict[str, str]
) -> None:
    """A dashboard's script can read X-Read-Position; a preflight for X-Min-Position passes."""
    app = create_query_app(read_settings.model_copy(update={"cors_origins": DASHBOARD}))
    async with asgi_client(app, "http://query-api") as query:
        asked = preflight(DASHBOARD, "GET", "authorization", "x-min-position")
        assert (await query.options("/api/v1/products", headers=asked)).status_code == 200
        response = await query.get("/api/v1/products", headers=reader | {"Origin": DASHBOARD})
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == DASHBOARD
        assert "x-read-position" in response.headers["access-control-expose-headers"].lower()
        assert "x-read-position" in response.headers  # empty: nothing projected yet
