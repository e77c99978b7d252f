"""The feed's answers as OpenAPI shows them (the route writes the JSON itself, with orjson)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from core.timestamps import Instant


class FeedEvent(BaseModel):
    """One committed event, upcast to its current schema."""

    position: str = Field(description="Position token: pass it as `after` or `Last-Event-ID`")
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any] = Field(
        description="actor, correlation_id, causation_id, request_id where known"
    )
    recorded_at: Instant


class FeedPageResponse(BaseModel):
    """Events in commit order and where to read on from."""

    events: list[FeedEvent]
    next: str | None = Field(
        description="Pass as `after` for the next page (None: nothing read yet)"
    )
