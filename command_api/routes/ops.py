"""Operator routes (scope ops:admin)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query

from command_api.deps import RepositoryDep
from command_api.schemas import StoredEventResponse, StreamEventsResponse
from core.auth import Principal
from core.errors import ADMIN_ERRORS, error_responses
from core.http import require_scope

router = APIRouter(prefix="/api/v1/ops", tags=["ops"])
Admin = Annotated[Principal, Depends(require_scope("ops:admin"))]


@router.get(
    "/streams/{stream_id}/events",
    response_model=StreamEventsResponse,
    responses={**ADMIN_ERRORS, **error_responses(e404="No such stream")},
)
async def stream_events(
    stream_id: UUID,
    repo: RepositoryDep,
    _: Admin,
    from_version: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> StreamEventsResponse:
    """A stream's stored events, oldest first, a page at a time."""
    events = await repo.store.read_stream(stream_id, from_version, limit + 1)
    if not events and from_version == 1:
        raise HTTPException(404, detail=f"stream {stream_id} not found")
    page = events[:limit]
    return StreamEventsResponse(
        stream_id=stream_id,
        events=[StoredEventResponse(**vars(e) | {"position": e.token}) for e in page],
        next_from_version=page[-1].version + 1 if len(events) > limit else None,
    )
