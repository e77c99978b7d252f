"""Given past commands, when one runs, then the events it appended (in-memory store)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import uuid4

from command_api import handlers
from command_api.handlers import Handler
from domain import commands
from eventstore.memory import InMemoryEventStore
from eventstore.repository import Context, Outcome, Repository
from workers.fulfilment import FulfilmentProcess

HANDLERS: dict[type[Any], Handler] = {
    commands.RegisterProduct: handlers.register_product,
    commands.RenameProduct: handlers.rename_product,
    commands.RepriceProduct: handlers.reprice_product,
    commands.DiscontinueProduct: handlers.discontinue_product,
    commands.ReceiveStock: handlers.receive_stock,
    commands.AdjustStock: handlers.adjust_stock,
    commands.PlaceOrder: handlers.place_order,
    commands.CancelOrder: handlers.cancel_order,
    commands.ShipOrder: handlers.ship_order,
}


def product(sku: str, price: str = "9.50") -> commands.RegisterProduct:
    """Register `sku` at `price`."""
    return commands.RegisterProduct(sku, "Mug", Decimal(price), "kitchen")


def order(*lines: tuple[str, int]) -> commands.PlaceOrder:
    """Place an order of (sku, quantity) lines for a new customer."""
    return commands.PlaceOrder(uuid4(), tuple(commands.RequestedLine(s, q) for s, q in lines))


class Scenario:
    """One in-memory store; the past is written through one repository, the command under test
    runs through another, so that it decides on the stored history, not on a cache."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.repo = Repository(self.store)
        self.history = Repository(self.store)
        self._mark = 0
        self._fulfilled = 0

    async def given(self, *past: object) -> list[Outcome]:
        """Commands that ran before the one under test."""
        return [await HANDLERS[type(c)](c, self.history, Context()) for c in past]

    async def fulfil(self) -> None:
        """Let the fulfilment process react to the events since it last ran (a 'given' or a
        'when': `then` lists what it appended)."""
        self._mark = len(self.store.events)
        events = (await self.store.read_all(limit=self._mark))[self._fulfilled :]
        self._fulfilled = self._mark
        await FulfilmentProcess(Repository(self.store)).apply(events)

    def rewind_fulfilment(self) -> None:
        """Make the fulfilment process see every event again (a redelivery from the start)."""
        self._fulfilled = 0

    async def when(self, command: object, context: Context | None = None) -> Outcome:
        """Run `command` through its handler."""
        self._mark = len(self.store.events)
        return await HANDLERS[type(command)](command, self.repo, context or Context())

    def then(self) -> list[tuple[str, dict[str, Any]]]:
        """The events appended since `when` started, as (type name, data)."""
        return [(e.type, e.data) for e in self.store.events[self._mark :]]
