"""Helpers shared by the query routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import HTTPException

from core.errors import ErrorResponse
from projections.documents import Document

T = TypeVar("T")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or expired token"},
    403: {"model": ErrorResponse, "description": "Token lacks the queries:read scope"},
    422: {"description": "Invalid query parameter or X-Min-Position"},
    503: {
        "model": ErrorResponse,
        "description": "Read models unavailable or behind X-Min-Position",
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorResponse, "description": "No such document"},
}


def found(doc: T | None, what: str) -> T:
    """The document, or a 404."""
    if doc is None:
        raise HTTPException(404, detail=f"{what} not found")
    return doc


def utc(moment: datetime) -> datetime:
    """Naive datetimes from clients are taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def between(field: str, start: Any, end: Any) -> Document:
    """A range filter on `field` (either end may be open)."""
    bounds = {op: value for op, value in (("$gte", start), ("$lte", end)) if value is not None}
    return {field: bounds} if bounds else {}
