"""The product catalog: one Product aggregate per SKU."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import ProductDiscontinued
from domain.values import DEFAULT_UNIT, normalize_sku, product_id, unit_of_measure, unit_price


class Product(Aggregate):
    """A sellable item; its stream id derives from its SKU, so a SKU is registered once."""

    class Registered(Aggregate.Created):
        """A product was added to the catalog."""

        sku: str
        name: str
        description: str
        price: Decimal
        category: str
        unit: str  # since schema version 2; older events are upcast with "each"

    class Renamed(Aggregate.Event):
        """A product's name changed."""

        name: str

    class Repriced(Aggregate.Event):
        """A product's price changed."""

        price: Decimal

    class Discontinued(Aggregate.Event):
        """A product was withdrawn from sale."""

        reason: str

    @staticmethod
    def create_id(sku: str, *_: Any, **__: Any) -> UUID:
        """The stream id: UUIDv5 of the SKU."""
        return product_id(sku)

    @classmethod
    def register(
        cls,
        sku: str,
        name: str,
        description: str,
        price: Decimal,
        category: str,
        unit: str = DEFAULT_UNIT,
    ) -> Product:
        """Register a new product, sold by `unit`."""
        sku, price, unit = normalize_sku(sku), unit_price(price), unit_of_measure(unit)
        return cls(sku, name, description, price, category, unit)

    @event(Registered)
    def __init__(
        self, sku: str, name: str, description: str, price: Decimal, category: str, unit: str
    ):
        self.sku = sku
        self.name = name
        self.description = description
        self.price = price
        self.category = category
        self.unit = unit
        self.discontinued = False

    def check_not_discontinued(self) -> None:
        """Refuse changes to a discontinued product."""
        if self.discontinued:
            raise ProductDiscontinued(f"product {self.sku} is discontinued")

    def rename(self, name: str) -> None:
        """Give the product a new name."""
        self.check_not_discontinued()
        self._renamed(name)

    def reprice(self, price: Decimal) -> None:
        """Set a new unit price."""
        self.check_not_discontinued()
        self._repriced(unit_price(price))

    def discontinue(self, reason: str) -> None:
        """Withdraw the product from sale; it accepts no further changes."""
        self.check_not_discontinued()
        self._discontinued(reason)

    @event(Renamed)
    def _renamed(self, name: str) -> None:
        self.name = name

    @event(Repriced)
    def _repriced(self, price: Decimal) -> None:
        self.price = price

    @event(Discontinued)
    def _discontinued(self, reason: str) -> None:
        self.discontinued = True
