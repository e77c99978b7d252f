"""HTTP schemas of the ops routes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from core.timestamps import Instant


class StoredEventResponse(BaseModel):
    """One stored event."""

    position: str
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: Instant


class StreamEventsResponse(BaseModel):
    """A page of a stream's events."""

    stream_id: UUID
    events: list[StoredEventResponse]
    next_from_version: int | None
