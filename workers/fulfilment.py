"""The order fulfilment process: reserve, then confirm or reject; release; ship.

Every step is exactly-once per (order, step) because repeats are no-ops or refused: a stock item
decides an order's reservation once (an open one it remembers; a closed one the store's unique
event id remembers, and the repeat raises DuplicateEvent), confirming or rejecting twice does
nothing, and releasing or shipping twice does nothing. A redelivered event therefore re-runs the
whole reaction safely, and one that crashed half-way completes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from core import tracing
from domain.errors import DomainError, InvalidOrderTransition
from domain.inventory import StockItem
from domain.orders import PENDING, Order
from domain.values import stock_item_id
from eventstore.records import DuplicateEvent, StoredEvent
from eventstore.repository import Context, Repository
from subscriptions import FULFILMENT, ProjectorError

log = logging.getLogger(__name__)
ACTOR = "fulfilment"


class FulfilmentProcess:
    """Reacts to order events by issuing stock and order commands."""

    name = FULFILMENT
    handles = frozenset({"OrderPlaced", "OrderCancelled", "OrderShipped"})
    traces_events = True  # each reaction is its own span: the runner adds none per event

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """React to each event in turn; a broken domain rule is this event's fault (parked)."""
        for event in events:
            try:
                await self.react(event)
            except DomainError as exc:
                raise ProjectorError(event, exc) from exc

    async def react(self, event: StoredEvent) -> None:
        """The reaction to one order event, as a span of the trace of the command behind it."""
        attributes = {
            "ordertrail.stream_id": str(event.stream_id),
            "ordertrail.position": event.token,
        }
        with tracing.event_span(f"fulfil {event.type}", event.metadata, attributes):
            await self._react(event)

    async def _react(self, event: StoredEvent) -> None:
        order_id, ctx = event.stream_id, caused_by(event)
        if event.type == "OrderPlaced":
            await self.fulfil(order_id, event.data["lines"], ctx)
        elif event.type == "OrderCancelled":
            await self.release_all(order_id, await self._skus(order_id), ctx)
        elif event.type == "OrderShipped":
            for sku in await self._skus(order_id):
                await self._stock(sku, lambda item: item.ship(order_id), ctx)

    async def fulfil(self, order_id: UUID, lines: list[dict[str, Any]], ctx: Context) -> None:
        """Reserve every line; confirm if all were reserved, else release and reject."""
        order = await self.repo.get(Order, order_id)
        if order is None or order.aggregate.status != PENDING:
            return  # cancelled (or decided) before we got here: nothing to reserve
        rejected = []
        for line in lines:
            decision = await self.reserve(order_id, line["sku"], line["quantity"], ctx)
            if decision != "reserved":
                rejected.append(f"{line['sku']} ({decision})")
        if rejected:
            await self.release_all(order_id, [line["sku"] for line in lines], ctx)
            reason = "insufficient stock for " + ", ".join(rejected)
            await self._order(order_id, lambda o: o.reject(reason), ctx)
        elif not await self._order(order_id, Order.confirm, ctx):
            await self.release_all(order_id, [line["sku"] for line in lines], ctx)

    async def reserve(self, order_id: UUID, sku: str, quantity: int, ctx: Context) -> str:
        """Reserve one line: "reserved", or why the order holds nothing on it."""
        if await self.repo.get(StockItem, stock_item_id(sku)) is None:
            return "no stock record"
        decided: list[str] = []

        def decide(item: StockItem | None) -> StockItem | None:
            if item is not None:
                decided.append(item.reserve(order_id, quantity))
            return item

        try:
            await self.repo.execute(StockItem, stock_item_id(sku), decide, ctx)
        except DuplicateEvent:
            # Decided by an earlier run and no longer held (rejected, or reserved and released
            # by that run's rejection): the order cannot be confirmed with this line.
            return "decided before, not held"
        return decided[-1] if decided else "no stock record"

    async def release_all(self, order_id: UUID, skus: list[str], ctx: Context) -> None:
        """Give back whatever the order holds on each SKU (no-op where it holds nothing)."""
        for sku in skus:
            await self._stock(sku, lambda item: item.release(order_id), ctx)

    async def _skus(self, order_id: UUID) -> list[str]:
        order = await self.repo.get(Order, order_id)
        return [line.sku for line in order.aggregate.lines] if order else []

    async def _stock(self, sku: str, change: Callable[[StockItem], None], ctx: Context) -> None:
        def decide(item: StockItem | None) -> StockItem | None:
            if item is not None:
                change(item)
            return item

        await self.repo.execute(StockItem, stock_item_id(sku), decide, ctx)

    async def _order(self, order_id: UUID, change: Callable[[Order], None], ctx: Context) -> bool:
        """Apply a change to the order; False if its status no longer allows it."""

        def decide(order: Order | None) -> Order | None:
            if order is not None:
                change(order)
            return order

        try:
            await self.repo.execute(Order, order_id, decide, ctx)
        except InvalidOrderTransition as exc:
            log.info("order %s: %s", order_id, exc)
            return False
        return True


def caused_by(event: StoredEvent) -> Context:
    """Metadata of follow-up commands: same correlation, caused by this event."""
    correlation = event.metadata.get("correlation_id") or str(event.event_id)
    metadata = {"actor": ACTOR, "correlation_id": correlation, "causation_id": str(event.event_id)}
    tracing.inject(metadata)  # its follow-up events stay in the same trace
    return Context(metadata=metadata)
