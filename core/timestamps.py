"""One wire format for instants: UTC, fixed microsecond precision, so strings sort like times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def format_instant(value: datetime) -> str:
    """Render `value` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (naive values are taken as UTC)."""
    # Pydantic's default drops a zero fraction ("…:11Z" sorts after "…:11.015Z"), which
    # breaks clients that compare or range-filter timestamps as strings.
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Instant = Annotated[datetime, PlainSerializer(format_instant, return_type=str, when_used="json")]
