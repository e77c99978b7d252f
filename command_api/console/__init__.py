"""The ops console: static files served at /console, and the dev stack's one-time login.

The page is plain HTML, CSS and JavaScript shipped in this package (no build step, no CDN). It
calls the ops routes with a token the user pastes, kept in sessionStorage only. Every file is
served with a strict Content-Security-Policy: scripts and styles from this origin only, no
inline code, no frames, no form posts, connections to this origin only.
"""

from __future__ import annotations

import hmac
import os
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from core.auth import SCOPES, mint_token
from core.errors import ApiError

# The files of the page, and what they are; nothing else is served from here.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# `ordertrail dev` hands the command API a one-time code and prints a link carrying it (in
# the fragment, which no server or log sees); the page trades it for a token once.
LOGIN_CODE_ENV = "ORDERTRAIL_CONSOLE_LOGIN_CODE"
DEV_LOGIN_TTL_SECONDS = 8 * 3600

router = APIRouter(include_in_schema=False)


def _file(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


@router.get("/console")
async def console_root() -> Response:
    """The console lives under /console/ (relative links)."""
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/")
async def console_page() -> Response:
    """The console's page."""
    return Response(_file("index.html"), media_type=FILES["index.html"], headers=HEADERS)


@router.get("/console/{name}")
async def console_file(name: str) -> Response:
    """One of the console's files (404 for anything else)."""
    if name not in FILES:
        raise HTTPException(404, detail="not found")
    return Response(_file(name), media_type=FILES[name], headers=HEADERS)


@router.post("/console/login")
async def console_login(
    request: Request, code: Annotated[str, Body(embed=True, max_length=200)]
) -> Response:
    """Dev mode only: trade the dev stack's one-time code for an all-scopes token."""
    settings = request.app.state.settings
    expected = os.environ.get(LOGIN_CODE_ENV, "")
    used: bool = getattr(request.app.state, "console_code_used", False)
    if settings.environment != "dev" or not expected or used:
        raise ApiError(404, "no login code to trade here", "not_found")
    if not hmac.compare_digest(code.encode(), expected.encode()):
        raise ApiError(401, "wrong login code", "invalid_token", {"WWW-Authenticate": "Bearer"})
    request.app.state.console_code_used = True  # once: a link seen twice logs in once
    token = mint_token(settings.secret, "dev", list(SCOPES), DEV_LOGIN_TTL_SECONDS)
    return Response(
        f'{{"token": "{token}"}}',
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
