"""HTTP plumbing shared by both APIs: request ids, body limits, bearer auth."""

import functools
import itertools
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.auth import InvalidToken, KeysUnavailable, Principal, TokenVerifier
from core.errors import ApiError, error_body
from core.logging import bind, unbind
from core.openapi import documents

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestContextMiddleware:
    """Gives every request an id (X-Request-ID) and refuses bodies over the limit with 413."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        send = _with_request_id(send, request_id)
        # Every line logged for this request (uvicorn's access line too) carries its id.
        token = bind(request_id=request_id)
        try:
            body = await read_body(receive, self.max_body_bytes, _declared_length(scope))
            if body is None:
                detail = f"body over {self.max_body_bytes} bytes"
                await _send_json(send, 413, error_body(detail, "body_too_large"))
                return
            await self.app(scope, replay(body, receive), send)
        finally:
            unbind(token)


class _RequestIds:
    """A random prefix per process and a counter: as unique as uuid4 across processes, without
    a uuid4 per request on the hot path. A forked child draws a prefix of its own."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new prefix and a counter from zero."""
        self.prefix, self.counter = uuid.uuid4().hex[:16], itertools.count()

    def next(self) -> str:
        """The next id: 32 hex digits."""
        return f"{self.prefix}{next(self.counter):016x}"


_IDS = _RequestIds()
os.register_at_fork(after_in_child=_IDS.reset)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, unique across processes."""
    return _IDS.next()


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.match(text) else None
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes | None:
    """The whole body, or None once it passes `limit` (checked before reading when declared)."""
    if declared is not None and declared > limit:
        return None
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def replay(body: bytes, then: Receive | None = None) -> Receive:
    """A `receive` that hands over `body` once, as the one message of the request.

    After it, `then` (the server's own `receive`) tells when the client goes, which a stream
    waits for; without it the client counts as gone at once.
    """
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then() if then is not None else {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _with_request_id(send: Send, request_id: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
        await send(message)

    return wrapped


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def unauthorized(detail: str, code: str = "invalid_token") -> HTTPException:
    """A 401 that tells the client which scheme to use."""
    return ApiError(401, detail, code, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as HTTPBearer reads it."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


M = TypeVar("M", bound=BaseModel)


def read_headers(model: type[M], request: Request) -> M:
    """The request's headers named by `model`'s field aliases, validated (422 naming the header).

    One model instead of a Header(...) parameter each: FastAPI resolves every parameter on
    every request. Document the model with core.openapi.model_headers.
    """
    aliases, present = _aliases(model), {}
    for name, value in request.scope["headers"]:  # one pass; the first of repeated headers wins
        if name in aliases and aliases[name] not in present:
            present[aliases[name]] = value.decode("latin-1")
    try:
        return model.model_validate(present)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**e, "loc": ("header", *e["loc"])} for e in errors]
        ) from None


@functools.cache
def _aliases(model: type[BaseModel]) -> dict[bytes, str]:
    """A model's header names as ASGI spells them (lower-case bytes) -> its field aliases."""
    fields = model.model_fields.values()
    return {field.alias.lower().encode("latin-1"): field.alias for field in fields if field.alias}


async def authorize(
    request: Request, token: str | None, scope: str, implied_by: tuple[str, ...] = ()
) -> Principal:
    """The caller behind a valid token carrying `scope` (or one implying it); else 401 or 403.

    503 when the identity provider's keys cannot be read and none are known yet.
    """
    if token is None:
        raise unauthorized("missing bearer token", "missing_token")
    verifier: TokenVerifier = request.app.state.verifier
    try:
        principal = await verifier.verify(token)
    except InvalidToken:
        raise unauthorized("invalid or expired token") from None
    except KeysUnavailable:
        raise ApiError(
            503, "token signing keys are unavailable", "unavailable", headers={"Retry-After": "5"}
        ) from None
    if scope not in principal.scopes and principal.scopes.isdisjoint(implied_by):
        raise ApiError(403, f"token lacks scope {scope}", "insufficient_scope")
    return principal


def require_scope(scope: str, *implied_by: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose valid token carries `scope` or one implying it.

    The token and the app's settings are read from the request, not from dependencies of
    their own: each costs FastAPI a resolution step on every request (see core.openapi).
    """

    @documents(bearer=True)
    async def dependency(request: Request) -> Principal:
        return await authorize(request, bearer_token(request), scope, implied_by)

    return dependency


def request_id(request: Request) -> str:
    """The id the middleware gave this request."""
    return str(getattr(request.state, "request_id", "") or new_request_id())
