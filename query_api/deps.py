"""Dependencies of the query routes: the database, auth, pagination, read-your-writes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast
from uuid import UUID

from fastapi import Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from core.auth import Principal
from core.errors import ApiError
from core.http import read_headers, require_scope
from core.openapi import documents, header, model_headers
from core.settings import Settings
from projections.documents import (
    AuditEntry,
    Document,
    OrderDocument,
    ProductDocument,
    SalesDayDocument,
    SalesDaySkuDocument,
    StockDocument,
)
from query_api.freshness import TOKEN, CheckpointWatcher, NotFreshEnough, Seen, View

READ_POSITION = {
    "X-Read-Position": header(
        "The position the read models answering this request include (empty before any)"
    )
}

MAX_PAGE_SIZE = 200
T = TypeVar("T", bound=Mapping[str, Any])


class ReadModels:
    """The read-model collections by logical name, resolved to the live generation."""

    def __init__(self, db: AsyncDatabase[Document], names: dict[str, str]) -> None:
        self.db, self.names = db, names

    def __getitem__(self, logical: str) -> AsyncCollection[Document]:
        return self.db[self.names.get(logical, logical)]

    def typed(self, logical: str, document: type[T]) -> AsyncCollection[T]:
        """The collection behind `logical`, its documents typed as its projection writes them."""
        # MongoDB hands back plain dicts: this is where the query API's documents get their type.
        return cast("AsyncCollection[T]", self[logical])

    @property
    def products(self) -> AsyncCollection[ProductDocument]:
        """The catalog."""
        return self.typed("products", ProductDocument)

    @property
    def stock(self) -> AsyncCollection[StockDocument]:
        """Stock per SKU."""
        return self.typed("stock", StockDocument)

    @property
    def orders(self) -> AsyncCollection[OrderDocument]:
        """Orders with their history."""
        return self.typed("orders", OrderDocument)

    @property
    def sales_daily(self) -> AsyncCollection[SalesDayDocument]:
        """Sales totals per day."""
        return self.typed("sales_daily", SalesDayDocument)

    @property
    def sales_daily_skus(self) -> AsyncCollection[SalesDaySkuDocument]:
        """Sales per day and SKU."""
        return self.typed("sales_daily_skus", SalesDaySkuDocument)

    @property
    def audit_log(self) -> AsyncCollection[AuditEntry]:
        """Every event."""
        return self.typed("audit_log", AuditEntry)


Reader = Annotated[Principal, Depends(require_scope("queries:read"))]


def view_of(request: Request) -> View:
    """The view this request claims its position from (set by `fresh`), else the newest."""
    view: View | None = getattr(request.state, "view", None)
    if view is None:
        watcher: CheckpointWatcher = request.app.state.watcher
        view = watcher.view
    return view


async def db_dep(request: Request) -> ReadModels:
    """The read models in the generations of the view X-Read-Position comes from."""
    return ReadModels(request.app.state.db, view_of(request).names)


Db = Annotated[ReadModels, Depends(db_dep)]


@dataclass(frozen=True)
class Page:
    """Which page of a list, `size` items each."""

    page: int
    size: int

    @property
    def skip(self) -> int:
        """Items before this page."""
        return (self.page - 1) * self.size

    def wrap(self, items: list[Any], total: int) -> dict[str, Any]:
        """The list answer: {items, total, page, size}."""
        return {"items": items, "total": total, "page": self.page, "size": self.size}


async def page_dep(
    page: Annotated[int, Query(ge=1, le=100_000, description="1-based page number")] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")] = 50,
) -> Page:
    """Pagination parameters (size at most 200)."""
    return Page(page, size)


Paging = Annotated[Page, Depends(page_dep)]


class FreshnessHeaders(BaseModel):
    """What a read may ask of the read models' freshness."""

    model_config = ConfigDict(extra="ignore")

    min_position: str | None = Field(
        None,
        alias="X-Min-Position",
        pattern=TOKEN.pattern,
        description="Wait (bounded) until this route's read models include this token",
    )


def fresh(*projections: str) -> Callable[..., Any]:
    """A dependency: honour X-Min-Position for `projections`, and report X-Read-Position.

    The header is read from the request, not declared as a parameter (see core.openapi). The
    caller is authorized first: a request that would be refused neither waits nor learns a
    position.
    """

    @documents(parameters=model_headers(FreshnessHeaders), response_headers=READ_POSITION)
    async def dependency(request: Request, _: Reader) -> None:
        x_min_position = read_headers(FreshnessHeaders, request).min_position
        watcher: CheckpointWatcher = request.app.state.watcher
        request.state.read_position = watcher.position(projections)
        view = watcher.view
        if x_min_position is not None:
            settings: Settings = request.app.state.settings
            try:
                view = await watcher.wait_for(
                    x_min_position, projections, settings.min_position_wait_seconds
                )
            except NotFreshEnough:
                raise _behind(x_min_position) from None
        # The route reads the collections of the view its position comes from (see db_dep);
        # the middleware puts the position on every answer.
        request.state.view, request.state.read_position = view, view.position(projections)

    return dependency


def canonical_uuid(raw: str) -> str:
    """A document key from a UUID path segment, as the projections write it."""
    return str(UUID(raw))


def fresh_document(
    projection: str, param: str, key: Callable[[str], str] = str, collection: str | None = None
) -> Callable[..., Any]:
    """A dependency for one-document routes: document `key(path[param])` of `projection`.

    `collection`: the read model's collection, when not named like the projection.

    It honours X-Min-Position like `fresh`, but the wait also ends as soon as the watcher finds
    the document itself past the token (see query_api.freshness). X-Read-Position is the
    newer of the checkpoint and the document's own `_last`: the document holds every event up
    to either. None when there is no such document (or the path does not name one: the route
    answers 422 for that).
    """

    @documents(parameters=model_headers(FreshnessHeaders), response_headers=READ_POSITION)
    async def dependency(request: Request, _: Reader) -> Document | None:
        x_min_position = read_headers(FreshnessHeaders, request).min_position
        watcher: CheckpointWatcher = request.app.state.watcher
        request.state.read_position = watcher.position([projection])
        try:
            wanted = key(request.path_params[param])
        except ValueError:
            return None
        logical = collection or projection
        if x_min_position is not None:
            seen = await _wait_for_document(request, x_min_position, projection, logical, wanted)
            if seen.known:
                request.state.read_position = seen.position
                return seen.document
        position, document = await _read_document(request, projection, logical, wanted)
        request.state.read_position = position
        return document

    return dependency


async def _wait_for_document(
    request: Request, token: str, projection: str, logical: str, wanted: str
) -> Seen:
    """Wait (bounded) until the projection or the document itself is past `token`; else 503."""
    watcher: CheckpointWatcher = request.app.state.watcher
    settings: Settings = request.app.state.settings
    try:
        return await watcher.wait_for_document(
            token, [projection], logical, wanted, settings.min_position_wait_seconds
        )
    except NotFreshEnough:
        raise _behind(token) from None


async def _read_document(
    request: Request, projection: str, logical: str, wanted: str
) -> tuple[str, Document | None]:
    """The document, and the position its read includes."""
    watcher: CheckpointWatcher = request.app.state.watcher
    view = watcher.view  # read from the collections of the view the position is claimed from
    position = view.position([projection])
    document = await request.app.state.db[view.physical(logical)].find_one({"_id": wanted})
    if document is not None:
        position = max(position, document.get("_last", ""))
    return position, document


def _behind(token: str) -> HTTPException:
    detail = f"read models have not reached {token} yet"
    return ApiError(503, detail, "not_caught_up", headers={"Retry-After": "1"})
