"""The audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from projections.documents import AuditEntry, Document
from query_api.deps import Db, Paging, Reader, fresh
from query_api.routes.common import ERRORS, between, utc
from query_api.schemas import AuditEntryResponse, Paginated

router = APIRouter(
    prefix="/api/v1/audit", tags=["audit"], dependencies=[Depends(fresh("audit_log"))]
)


def audit_entry_response(doc: AuditEntry) -> AuditEntryResponse:
    """An audit entry as clients see it."""
    return AuditEntryResponse(
        position=doc["position"],
        event_id=doc["event_id"],
        stream_id=doc["stream_id"],
        stream_type=doc["stream_type"],
        type=doc["type"],
        version=doc["version"],
        data=doc["data"],
        actor=doc["actor"],
        correlation_id=doc["correlation_id"],
        causation_id=doc["causation_id"],
        request_id=doc["request_id"],
        recorded_at=doc["recorded_at"],
    )


@router.get("", response_model=Paginated[AuditEntryResponse], responses=ERRORS)
async def audit(
    db: Db,
    _: Reader,
    paging: Paging,
    stream_id: UUID | None = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=100, examples=["OrderPlaced"])] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, object]:
    """Every event with who did it and why; newest first."""
    query: Document = {}
    for field, value in (("stream_id", stream_id), ("actor", actor), ("type", type)):
        if value is not None:
            query[field] = str(value)
    query |= between("recorded_at", utc(since) if since else None, utc(until) if until else None)
    cursor = db.audit_log.find(query).sort("_id", -1).skip(paging.skip).limit(paging.size)
    items = [audit_entry_response(doc) async for doc in cursor]
    return paging.wrap(items, await db.audit_log.count_documents(query))
