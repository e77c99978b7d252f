"""Every route of both APIs x every kind of credential → the documented 401 / 403 / answer.

Routes are enumerated from the apps themselves, so a route added without auth fails here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from starlette.routing import Route

from command_api.app import create_app
from core.auth import SCOPES
from core.errors import ERROR_CODES
from core.settings import Settings
from query_api.app import create_app as create_query_app

Auth = Callable[..., dict[str, str]]
PUBLIC = {"/health", "/ready", "/metrics"}
# The ops console's files, and its dev-mode login (a one-time code, refused outside dev mode).
CONSOLE = {"/console", "/console/", "/console/{name}", "/console/login"}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Values of the right shape for every path parameter (ids nobody has: a 404 is an answer too).
PATH_VALUES = {
    "day": "2026-01-31",
    "product_id": str(uuid.uuid4()),
    "order_id": str(uuid.uuid4()),
    "stream_id": str(uuid.uuid4()),
    "sku": "NOBODY-001",
    "name": "no-such-projection",
    "job_id": uuid.uuid4().hex,
    "subscriber": "products",
}
VARIANTS = ["none", "malformed", "wrong signature", "expired", *SCOPES, "all scopes"]


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route an app documents, plus its docs routes."""
    found = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    found += [
        (m, route.path)
        for route in _flattened(app.routes)
        if isinstance(route, Route) and route.methods
        for m in sorted(route.methods)
        if m != "HEAD"
    ]
    return sorted(set(found))


def _flattened(routes: list[Any]) -> list[Any]:
    """Routes, with those of included routers (FastAPI keeps them behind a wrapper) too."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += _flattened(included.routes) if included is not None else [route]
    return flat


# Built once at collection: the matrix's rows come from the real route tables.
_SETTINGS = Settings(JWT_SECRET="collection-only-" + "x" * 32, ORDERTRAIL_ENV="test")  # type: ignore[call-arg]
COMMAND_ROUTES = _routes(create_app(_SETTINGS))
QUERY_ROUTES = _routes(create_query_app(_SETTINGS))


def required_scope(api: str, path: str) -> str | None:
    """The scope DESIGN §6 documents for a route (None: no token needed)."""
    if path in PUBLIC | DOCS | CONSOLE:
        return None
    if path.startswith("/api/v1/ops/"):
        return "ops:admin"
    if path == "/api/v1/feed":
        return "events:read"
    return "commands:write" if api == "command" else "queries:read"


# A scope some other scope grants as well (DESIGN §12: ops:admin may read the feed).
IMPLIED = {"events:read": {"ops:admin"}}


def headers_for(variant: str, auth: Auth) -> dict[str, str]:
    """The Authorization header of one column of the matrix."""
    now = int(time.time())
    claims = {"sub": "mallory", "scope": " ".join(SCOPES), "iat": now, "exp": now + 600}
    if variant == "none":
        return {}
    if variant == "malformed":
        return {"Authorization": "Bearer not-a-jwt"}
    if variant == "wrong signature":
        forged = jwt.encode(claims, "not-the-secret-" + uuid.uuid4().hex, algorithm="HS256")
        return {"Authorization": f"Bearer {forged}"}
    if variant == "expired":
        return auth(*SCOPES, ttl=-3600)
    if variant == "all scopes":
        return auth(*SCOPES)
    return auth(variant)


def concrete(path: str) -> str:
    """A template with its parameters filled in."""
    return path.format(**PATH_VALUES)


def cases() -> list[Any]:
    """(api, method, path, variant) for every protected route and every variant."""
    rows = [("command", m, p) for m, p in COMMAND_ROUTES] + [
        ("query", m, p) for m, p in QUERY_ROUTES
    ]
    return [
        pytest.param(api, method, path, variant, id=f"{api} {method} {path} [{variant}]")
        for api, method, path in rows
        if required_scope(api, path) is not None
        for variant in VARIANTS
    ]


def test_the_matrix_covers_every_route_and_only_health_endpoints_are_public() -> None:
    """Both apps' routes are all in the matrix; the token-free ones are the probes and docs."""
    everything = [("command", *r) for r in COMMAND_ROUTES] + [("query", *r) for r in QUERY_ROUTES]
    public = {path for api, _, path in everything if required_scope(api, path) is None}
    assert public == PUBLIC | DOCS | CONSOLE
    covered = {(c.values[0], c.values[1], c.values[2]) for c in cases()}
    assert covered == {row for row in everything if row[2] not in public}
    # The contract's routes are all there (DESIGN §6), ops included.
    assert len({p for _, p in COMMAND_ROUTES if p.startswith("/api/v1/ops/")}) == 11
    assert len({p for _, p in QUERY_ROUTES if p.startswith("/api/v1/")}) == 17  # 5 live


@pytest.mark.parametrize(("api_name", "method", "path", "variant"), cases())
async def test_route_answers_each_credential_as_documented(
    api_name: str,
    method: str,
    path: str,
    variant: str,
    api: httpx.AsyncClient,
    bare_query: httpx.AsyncClient,
    auth: Auth,
) -> None:
    """401 + WWW-Authenticate without a valid token, 403 without the scope, else an answer."""
    client = api if api_name == "command" else bare_query
    body = {} if method == "POST" else None
    response = await client.request(
        method, concrete(path), json=body, headers=headers_for(variant, auth)
    )
    scope = required_scope(api_name, path)
    if variant in ("none", "malformed", "wrong signature", "expired"):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        expected = "missing_token" if variant == "none" else "invalid_token"
        assert response.json()["code"] == expected
    elif variant in {scope, "all scopes", *IMPLIED.get(scope or "", ())}:
        # Authorised: whatever the route says about the (empty) request, never 401/403/5xx.
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "insufficient_scope"
    if response.status_code >= 400:  # every error: {detail, code}, the code a listed one
        body = response.json()
        assert body["detail"] and body["code"] in ERROR_CODES, body


@pytest.mark.parametrize("path", sorted(PUBLIC))
async def test_probes_need_no_token(
    path: str, api: httpx.AsyncClient, bare_query: httpx.AsyncClient
) -> None:
    """/health, /ready and /metrics answer without credentials on both APIs."""
    for client in (api, bare_query):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
