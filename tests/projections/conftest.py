"""Events for projection tests, made by the real command handlers on an in-memory store."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from pymongo import AsyncMongoClient, monitoring

from command_api import handlers
from domain import commands
from domain.inventory import StockItem
from domain.orders import Order
from domain.values import product_id, stock_item_id
from eventstore.memory import InMemoryEventStore
from eventstore.records import StoredEvent
from eventstore.repository import Context, Repository


class History:
    """Builds a history through the domain; `events` is everything appended so far."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.repo = Repository(self.store)

    @property
    def events(self) -> list[StoredEvent]:
        """All events in commit order."""
        return list(self.store.events)

    async def product(self, sku: str, price: str = "10.00", category: str = "kitchen") -> UUID:
        """Register a product."""
        command = commands.RegisterProduct(sku, f"Product {sku}", Decimal(price), category)
        return (await handlers.register_product(command, self.repo, _ctx())).stream_id

    async def receive(self, sku: str, quantity: int) -> None:
        """Receive stock."""
        await handlers.receive_stock(commands.ReceiveStock(sku, quantity), self.repo, _ctx())

    async def order(self, *lines: tuple[str, int]) -> UUID:
        """Place an order."""
        requested = tuple(commands.RequestedLine(sku, qty) for sku, qty in lines)
        command = commands.PlaceOrder(uuid4(), requested)
        return (await handlers.place_order(command, self.repo, _ctx())).stream_id

    async def reserve(self, order_id: UUID, sku: str, quantity: int) -> None:
        """What the fulfilment process does for one line."""
        await self._stock(sku, lambda item: item.reserve(order_id, quantity))

    async def release(self, order_id: UUID, sku: str) -> None:
        """Give an order's reservation back."""
        await self._stock(sku, lambda item: item.release(order_id))

    async def ship_stock(self, order_id: UUID, sku: str) -> None:
        """Ship an order's reserved units."""
        await self._stock(sku, lambda item: item.ship(order_id))

    async def confirm(self, order_id: UUID) -> None:
        """Confirm an order."""
        await self._order(order_id, Order.confirm)

    async def reject(self, order_id: UUID, reason: str) -> None:
        """Reject an order."""
        await self._order(order_id, lambda order: order.reject(reason))

    async def cancel(self, order_id: UUID, reason: str = "changed mind") -> None:
        """Cancel an order."""
        await handlers.cancel_order(commands.CancelOrder(order_id, reason), self.repo, _ctx())

    async def rename(self, sku: str, name: str) -> None:
        """Rename a product."""
        command = commands.RenameProduct(product_id(sku), name)
        await handlers.rename_product(command, self.repo, _ctx())

    async def reprice(self, sku: str, price: str) -> None:
        """Reprice a product."""
        command = commands.RepriceProduct(product_id(sku), Decimal(price))
        await handlers.reprice_product(command, self.repo, _ctx())

    async def discontinue(self, sku: str, reason: str) -> None:
        """Withdraw a product from sale."""
        command = commands.DiscontinueProduct(product_id(sku), reason)
        await handlers.discontinue_product(command, self.repo, _ctx())

    async def _stock(self, sku: str, change: object) -> None:
        def decide(item: StockItem | None) -> StockItem:
            assert item is not None
            change(item)  # type: ignore[operator]
            return item

        await self.repo.execute(StockItem, stock_item_id(sku), decide)

    async def _order(self, order_id: UUID, change: object) -> None:
        def decide(order: Order | None) -> Order:
            assert order is not None
            change(order)  # type: ignore[operator]
            return order

        await self.repo.execute(Order, order_id, decide)


def _ctx() -> Context:
    return Context(metadata={"actor": "tester", "correlation_id": "c-1", "causation_id": "k-1"})


@pytest.fixture
def history() -> History:
    """An empty history."""
    return History()


class Sent(monitoring.CommandListener):
    """Counts the commands a client sends to the server, by name (each one a round trip)."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Count it."""
        self.commands[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to do."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to do."""


@pytest.fixture
async def watched(mongodb_url: str) -> AsyncIterator[tuple[Any, Sent]]:
    """A scratch database on a client that counts the commands it sends."""
    sent = Sent()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, event_listeners=[sent])
    name = f"watched_{uuid4().hex[:8]}"
    try:
        yield client[name], sent
    finally:
        await client.drop_database(name)
        await client.close()
