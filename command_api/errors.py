"""Maps failures to HTTP answers: {"detail", "code"}, never a 500 for a client's mistake."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core import errors as shared_errors
from domain.errors import DomainError, InvalidValue, NotFound
from eventstore.base import ClaimLost, IdempotencyConflict
from eventstore.loading import StreamTypeMismatch
from eventstore.records import AppendAborted, OutcomeUnknown, StoreUnavailable
from eventstore.repository import ConcurrencyConflict, PreconditionFailed

log = logging.getLogger(__name__)


def error(
    status: int, detail: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error response in the API's shape."""
    return JSONResponse(shared_errors.error_body(detail, code), status, headers)


async def domain_error(_: Request, exc: Exception) -> JSONResponse:
    """Rules of the domain: 404 for unknown ids, 422 for bad values, else 409."""
    assert isinstance(exc, DomainError)
    status = 404 if isinstance(exc, NotFound) else 422 if isinstance(exc, InvalidValue) else 409
    return error(status, str(exc), exc.code)


async def precondition_failed(_: Request, exc: Exception) -> JSONResponse:
    """If-Match named another version."""
    return error(412, str(exc), "precondition_failed")


async def concurrency_conflict(_: Request, exc: Exception) -> JSONResponse:
    """Retries against concurrent writers ran out."""
    return error(409, str(exc), "concurrency_conflict")


async def idempotency_conflict(_: Request, exc: Exception) -> JSONResponse:
    """The key is in flight (409) or was used with another body (422)."""
    assert isinstance(exc, IdempotencyConflict)
    if exc.reason == "body_mismatch":
        msg = "Idempotency-Key was already used with a different request"
        return error(422, msg, "idempotency_key_reused")
    return error(409, "a request with this Idempotency-Key is in flight", "idempotency_in_flight")


async def claim_lost(_: Request, exc: Exception) -> JSONResponse:
    """Another request took over the key; this one appended nothing."""
    return error(409, str(exc), "idempotency_in_flight")


async def unavailable(_: Request, exc: Exception) -> JSONResponse:
    """The event store cannot be reached: nothing was written."""
    log.warning("event store unavailable: %s", exc)
    return error(503, "event store unavailable", "unavailable", {"Retry-After": "1"})


async def outcome_unknown(_: Request, exc: Exception) -> JSONResponse:
    """The connection was lost while the append committed: it may or may not have happened."""
    log.warning("event store append outcome unknown: %s", exc)
    detail = (
        "the event store connection was lost while the command was being committed: it may or "
        "may not have been applied. Retrying is safe only with the same Idempotency-Key, which "
        "then returns the stored answer if it was applied; without one, read the stream first"
    )
    return error(503, detail, "outcome_unknown", {"Retry-After": "1"})


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log it with the request id, tell the client nothing internal."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "internal error", "internal")


async def wrong_stream_type(_: Request, exc: Exception) -> JSONResponse:
    """The id names a stream of another kind: for this route it does not exist."""
    return error(404, str(exc), "not_found")


def install(app: FastAPI) -> None:
    """Register every handler above (and the shared ones)."""
    shared_errors.install(app)
    app.add_exception_handler(StreamTypeMismatch, wrong_stream_type)
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(PreconditionFailed, precondition_failed)
    app.add_exception_handler(ConcurrencyConflict, concurrency_conflict)
    app.add_exception_handler(AppendAborted, concurrency_conflict)  # outside the repository's retry
    app.add_exception_handler(IdempotencyConflict, idempotency_conflict)
    app.add_exception_handler(ClaimLost, claim_lost)
    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(OutcomeUnknown, outcome_unknown)
    app.add_exception_handler(Exception, unexpected)
