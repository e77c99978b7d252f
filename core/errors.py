"""Error answers both APIs share: validation errors that are always valid JSON."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

# FastAPI answers 400 with this text when the body cannot be decoded at all (bad UTF-8, JSON
# nested beyond the parser's depth); to the client that is invalid input like any other: 422.
_UNPARSEABLE_BODY = "There was an error parsing the body"


def json_safe(value: Any) -> Any:
    """Echo client input back safely: no NaN/Infinity, no lone surrogates, no odd types."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return json_safe(str(value))


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's error list, made safe to serialise whatever the client sent."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {k: json_safe(v) for k, v in error.items() if k in ("type", "loc", "msg", "input")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, 422)


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's HTTP errors in the usual shape, with an undecodable body reported as 422."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSEABLE_BODY:
        return JSONResponse({"detail": "request body is not valid JSON"}, 422)
    return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)


def install(app: FastAPI) -> None:
    """Register the shared handlers."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


class ErrorResponse(BaseModel):
    """An error answer of either API: `{"detail": ...}`, with a stable `code` where one applies."""

    detail: Any
    code: str | None = None


def error_responses(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses given as `e404="..."` (bodies are ErrorResponse)."""
    return {
        int(key.removeprefix("e")): {"model": ErrorResponse, "description": text}
        for key, text in described.items()
    }


ADMIN_ERRORS = error_responses(
    e401="Missing, invalid or expired token",
    e403="Token lacks the ops:admin scope",
    e503="A store or the job queue is unavailable",
)
