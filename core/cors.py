"""Cross-origin access for browser dashboards (CORS), off unless CORS_ORIGINS names origins."""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

# What a browser client may send: the bearer token and the headers the APIs read.
REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "X-Correlation-ID",
    "X-Causation-ID",
    "X-Request-ID",
    "X-Min-Position",
    "Last-Event-ID",
)
# What its script may read back: read-your-writes tokens, versions, replays, back-off hints.
RESPONSE_HEADERS = (
    "ETag",
    "X-Position",
    "X-Read-Position",
    "Idempotent-Replayed",
    "Retry-After",
    "X-Request-ID",
    "Location",
)
# Browsers may reuse a preflight's answer this long (seconds) before asking again.
PREFLIGHT_MAX_AGE = 600


def origins(setting: str) -> list[str]:
    """The comma-separated CORS_ORIGINS as a list ("*" alone allows any origin)."""
    return [origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip()]


def cors_options(setting: str) -> dict[str, Any] | None:
    """CORSMiddleware's arguments for CORS_ORIGINS, or None when CORS is off.

    No credentials mode: tokens travel in the Authorization header, never in cookies, so a
    page from another origin can act only with a token its user pasted.
    """
    allowed = origins(setting)
    if not allowed:
        return None
    return {
        "allow_origins": allowed,
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": list(REQUEST_HEADERS),
        "expose_headers": list(RESPONSE_HEADERS),
        "allow_credentials": False,
        "max_age": PREFLIGHT_MAX_AGE,
    }


def with_cors(app: ASGIApp, setting: str) -> ASGIApp:
    """`app` behind CORS for the configured origins, or `app` itself when there are none."""
    options = cors_options(setting)
    return app if options is None else CORSMiddleware(app, **options)
