"""What the repository contract tests share: a counting store, SKUs and decisions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from uuid import UUID

from domain.catalog import Product
from domain.errors import AlreadyExists, NotFound
from eventstore.base import (
    Completion,
    EventStore,
    IdempotencyClaim,
    StoredResponse,
)
from eventstore.positions import Position
from eventstore.records import AppendResult, StoredEvent, StreamAppend

Decide = Callable[[Product | None], Product]


class CountingStore:
    """Another store, counting stream reads (the round trips the cache saves) and recording
    the version each one started from."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.starts: list[int] = []

    @property
    def reads(self) -> int:
        """How many stream reads were made."""
        return len(self.starts)

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        """Record, then read."""
        self.starts.append(from_version)
        return await self.inner.read_stream(stream_id, from_version, limit)

    async def append(
        self, *streams: StreamAppend, completion: Completion | None = None
    ) -> list[AppendResult]:
        """Append through the other store."""
        return await self.inner.append(*streams, completion=completion)

    async def read_all(self, after: Position | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Read through the other store."""
        return await self.inner.read_all(after, limit)

    async def read_by_position(
        self, upto: Position, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Read through the other store."""
        return await self.inner.read_by_position(upto, after, limit)

    async def claim_idempotency(
        self, actor: str, key: str, request_hash: str
    ) -> IdempotencyClaim | StoredResponse:
        """Claim through the other store."""
        return await self.inner.claim_idempotency(actor, key, request_hash)

    async def complete_idempotency(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        """Complete through the other store."""
        await self.inner.complete_idempotency(claim, response)

    async def release_idempotency(self, claim: IdempotencyClaim) -> None:
        """Release through the other store."""
        await self.inner.release_idempotency(claim)

    async def purge_idempotency(self, limit: int) -> int:
        """Purge through the other store."""
        return await self.inner.purge_idempotency(limit)


def new_sku() -> str:
    """A SKU no other test uses."""
    return "REPO-" + uuid.uuid4().hex[:8].upper()


def register(sku: str) -> Decide:
    """Decide: register the product."""
    return lambda _: Product.register(sku, "Mug", "", Decimal("3.00"), "kitchen")


def register_once(sku: str) -> Decide:
    """Decide as the handler does: register, or refuse a SKU that is taken."""

    def decide(product: Product | None) -> Product:
        if product is not None:
            raise AlreadyExists(f"SKU {sku} is already registered")
        return Product.register(sku, "Mug", "", Decimal("3.00"), "kitchen")

    return decide


def changed(change: Callable[[Product], None]) -> Decide:
    """Decide: apply `change` to an existing product."""

    def decide(product: Product | None) -> Product:
        if product is None:
            raise NotFound("product")
        change(product)
        return product

    return decide


def renamed(name: str) -> Decide:
    """Decide: rename an existing product."""
    return changed(lambda product: product.rename(name))


def reprice(price: str) -> Decide:
    """Decide: change an existing product's price."""
    return changed(lambda product: product.reprice(Decimal(price)))


def discontinue() -> Decide:
    """Decide: discontinue an existing product."""
    return changed(lambda product: product.discontinue("gone"))
