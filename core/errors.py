"""Error answers both APIs share: validation errors that are always valid JSON."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi import HTTPException as FastAPIHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
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


# Every `code` an error answer of either API may carry, and what it means. Clients branch on
# the code, never on `detail` (which is for people and may change).
ERROR_CODES: dict[str, str] = {
    "validation_failed": "the request (body, parameters or headers) is invalid; detail lists why",
    "invalid_json": "the body is not valid JSON",
    "invalid_value": "a value breaks a rule of the domain (a price below zero, …)",
    "missing_token": "no bearer token",
    "invalid_token": "the token is malformed, badly signed, expired or for another audience",
    "insufficient_scope": "the token lacks the scope the route needs",
    "not_found": "no such resource",
    "method_not_allowed": "the route does not answer this method",
    "not_acceptable": "the route cannot answer in the media type the Accept header asks for",
    "body_too_large": "the body is over MAX_BODY_BYTES",
    "precondition_failed": "If-Match named another version of the stream",
    "conflict": "the request conflicts with the resource's state",
    "domain_rule": "the command breaks a rule of the domain",
    "already_exists": "a product with this SKU (or a stream with this id) exists already",
    "product_discontinued": "the product is discontinued",
    "unknown_product": "an order line names a SKU no product has",
    "insufficient_stock": "not enough stock to reserve an order's lines",
    "invalid_order_transition": "the order's status does not allow this (ship a cancelled one)",
    "limit_exceeded": "a size limit of the domain (lines per order, …) is exceeded",
    "concurrency_conflict": "concurrent writers kept winning the race for the stream",
    "idempotency_in_flight": "a request with this Idempotency-Key is still being handled",
    "idempotency_key_reused": "the Idempotency-Key was used with a different request",
    "too_many_clients": "the process serves its maximum of waiting clients; retry after a while",
    "not_caught_up": "the read models have not reached X-Min-Position yet; retry",
    "unavailable": "a store, the job queue or the identity provider cannot be reached",
    "outcome_unknown": "the connection was lost while committing: use the same key to retry",
    "internal": "a bug; the request id in the logs tells which",
}
# The code of an HTTP error raised without one of its own.
DEFAULT_CODES = {
    400: "validation_failed",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "body_too_large",
    422: "validation_failed",
    503: "unavailable",
}


class ApiError(FastAPIHTTPException):
    """An HTTP error with its stable `code` (one of ERROR_CODES)."""

    def __init__(
        self, status: int, detail: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        if code not in ERROR_CODES:  # a new code must be listed (and so documented)
            raise ValueError(f"unlisted error code {code!r}")
        super().__init__(status, detail=detail, headers=headers)
        self.code = code


def error_body(detail: Any, code: str) -> dict[str, Any]:
    """The body of every error answer."""
    return {"detail": detail, "code": code}


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's error list, made safe to serialise whatever the client sent."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {k: json_safe(v) for k, v in error.items() if k in ("type", "loc", "msg", "input")}
        for error in exc.errors()
    ]
    return JSONResponse(error_body(errors, "validation_failed"), 422)


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's HTTP errors in the usual shape, with an undecodable body reported as 422."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSEABLE_BODY:
        return JSONResponse(error_body("request body is not valid JSON", "invalid_json"), 422)
    code = getattr(exc, "code", None) or DEFAULT_CODES.get(exc.status_code, "internal")
    return JSONResponse(error_body(exc.detail, code), exc.status_code, exc.headers)


def install(app: FastAPI) -> None:
    """Register the shared handlers."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


class ErrorResponse(BaseModel):
    """An error answer of either API: what went wrong, for people, and a stable code."""

    detail: Any = Field(description="What went wrong (for people: it may change)")
    code: str = Field(
        description="Stable, for programs: "
        + "; ".join(f"`{code}`: {meaning}" for code, meaning in ERROR_CODES.items())
    )


class ValidationIssue(BaseModel):
    """One reason a request is invalid."""

    type: str
    loc: list[str | int] = Field(description="Where: body, query, path or header, then names")
    msg: str
    input: Any = None


class ValidationErrorResponse(BaseModel):
    """A 422: every reason the request is invalid (`code` is `validation_failed`, or
    `invalid_json` with a string detail when the body cannot be parsed)."""

    detail: list[ValidationIssue] | str
    code: str


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
