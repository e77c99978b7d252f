"""Inventory: one StockItem aggregate per SKU, tracking what is on hand and reserved."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, InsufficientStock, InvalidValue
from domain.values import MAX_ON_HAND, normalize_sku, positive, stock_item_id, within


class StockItem(Aggregate):
    """Stock of one SKU; reservations are keyed by order so repeats are harmless."""

    class Opened(Aggregate.Created):
        """A SKU's stock record was opened by its first receipt."""

        sku: str

    class Received(Aggregate.Event):
        """Goods arrived."""

        sku: str
        quantity: int
        reference: str

    class Adjusted(Aggregate.Event):
        """Stock was corrected by a count, breakage or similar."""

        sku: str
        delta: int
        reason: str

    class Reserved(Aggregate.Event):
        """Stock was set aside for an order."""

        sku: str
        order_id: UUID
        quantity: int

    class ReservationRejected(Aggregate.Event):
        """An order asked for more than was available."""

        sku: str
        order_id: UUID
        quantity: int
        available: int

    class Released(Aggregate.Event):
        """An order's reservation was given back."""

        sku: str
        order_id: UUID
        quantity: int

    class Shipped(Aggregate.Event):
        """An order's reserved stock left the warehouse."""

        sku: str
        order_id: UUID
        quantity: int

    @staticmethod
    def create_id(sku: str, *_: Any, **__: Any) -> UUID:
        """The stream id: UUIDv5 of the SKU in the stock namespace."""
        return stock_item_id(sku)

    @classmethod
    def open(cls, sku: str) -> StockItem:
        """Open the stock record of a SKU."""
        return cls(normalize_sku(sku))

    @event(Opened)
    def __init__(self, sku: str):
        self.sku = sku
        self.on_hand = 0
        self.reservations: dict[UUID, int] = {}
        # Orders whose reservation was decided once; asking again is a no-op.
        self.settled: set[UUID] = set()
        self.rejected: set[UUID] = set()

    @property
    def reserved(self) -> int:
        """Units set aside for orders."""
        return sum(self.reservations.values())

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.on_hand - self.reserved

    def decision(self, order_id: UUID) -> Literal["reserved", "rejected"] | None:
        """How the order's reservation request was decided, if it was."""
        if order_id in self.rejected:
            return "rejected"
        return "reserved" if order_id in self.settled else None

    def receive(self, quantity: int, reference: str = "") -> None:
        """Record goods received; never past MAX_ON_HAND."""
        positive(quantity, limit=MAX_ON_HAND)
        within(self.on_hand + quantity, MAX_ON_HAND, f"{self.sku}: stock on hand")
        self._received(self.sku, quantity, reference)

    def adjust(self, delta: int, reason: str) -> None:
        """Correct the count; never below what is reserved, never past MAX_ON_HAND."""
        if delta == 0:
            raise InvalidValue("delta must not be zero")
        positive(abs(delta), "delta's magnitude", limit=MAX_ON_HAND)
        within(self.on_hand + delta, MAX_ON_HAND, f"{self.sku}: stock on hand")
        if self.on_hand + delta < self.reserved:
            raise InsufficientStock(
                f"{self.sku}: on hand {self.on_hand} {delta:+d} would fall below "
                f"reserved {self.reserved}"
            )
        self._adjusted(self.sku, delta, reason)

    def reserve(self, order_id: UUID, quantity: int) -> None:
        """Reserve for an order, or record the rejection; a repeat for the same order is a no-op."""
        positive(quantity)
        if order_id in self.settled:
            return
        if quantity > self.available:
            self._reservation_rejected(self.sku, order_id, quantity, self.available)
        else:
            self._reserved(self.sku, order_id, quantity)

    def release(self, order_id: UUID) -> None:
        """Give back an order's reservation; a no-op when it holds none."""
        if order_id in self.reservations:
            self._released(self.sku, order_id, self.reservations[order_id])

    def ship(self, order_id: UUID) -> None:
        """Ship an order's reserved units; a no-op when already shipped."""
        if order_id in self.reservations:
            self._shipped(self.sku, order_id, self.reservations[order_id])
        elif order_id not in self.settled:
            raise DomainError(f"{self.sku}: order {order_id} holds no reservation")

    @event(Received)
    def _received(self, sku: str, quantity: int, reference: str) -> None:
        self.on_hand += quantity

    @event(Adjusted)
    def _adjusted(self, sku: str, delta: int, reason: str) -> None:
        self.on_hand += delta

    @event(Reserved)
    def _reserved(self, sku: str, order_id: UUID, quantity: int) -> None:
        self.reservations[order_id] = quantity
        self.settled.add(order_id)

    @event(ReservationRejected)
    def _reservation_rejected(
        self, sku: str, order_id: UUID, quantity: int, available: int
    ) -> None:
        self.settled.add(order_id)
        self.rejected.add(order_id)

    @event(Released)
    def _released(self, sku: str, order_id: UUID, quantity: int) -> None:
        del self.reservations[order_id]

    @event(Shipped)
    def _shipped(self, sku: str, order_id: UUID, quantity: int) -> None:
        del self.reservations[order_id]
        self.on_hand -= quantity
