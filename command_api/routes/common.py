"""OpenAPI descriptions shared by the command routes."""

from __future__ import annotations

from typing import Any

from core.errors import ErrorResponse

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or expired token"},
    403: {"model": ErrorResponse, "description": "Token lacks the commands:write scope"},
    409: {"model": ErrorResponse, "description": "A domain rule or a concurrent write refused it"},
    412: {
        "model": ErrorResponse,
        "description": "If-Match names another version (a stream not created yet is at 0)",
    },
    413: {"model": ErrorResponse, "description": "Body over 64 KiB"},
    422: {"description": "Invalid body, header or Idempotency-Key reused with another body"},
    503: {"model": ErrorResponse, "description": "Event store unavailable; nothing was written"},
}

CREATE_RESPONSES: dict[int | str, dict[str, Any]] = dict(_ERRORS)
UPDATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorResponse, "description": "No such aggregate"},
}
