"""Inventory: one StockItem aggregate per SKU, tracking what is on hand and reserved."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InsufficientStock, InvalidValue
from domain.values import MAX_ON_HAND, normalize_sku, positive, stock_item_id, within

# Namespace of reservation decision ids (fixed forever: stored events carry ids made from it).
_DECISIONS = UUID("5f0c7d1e-8a43-4c52-9b0e-2f6a1d9c3e71")


def decision_id(stock_item: UUID, order_id: UUID) -> UUID:
    """The event id of an order's reservation decision on one stock item: the same every time."""
    return uuid5(_DECISIONS, f"{stock_item}:{order_id}")


class StockItem(Aggregate):
    """Stock of one SKU: what is on hand and the open reservations, nothing else.

    Its state is bounded by the orders holding stock now, never by its history. Yet each order's
    reservation is decided exactly once:

    - while the order holds a reservation, the item remembers it and asking again is a no-op;
    - once the reservation is no longer open (rejected, released or shipped) the item has
      forgotten the order, but the decision event's id is a function of (item, order),
      `decision_id`, and the store's unique index on event ids refuses a second decision
      (DuplicateEvent). The index is the long memory; the aggregate only the short one.

    So a redelivered or re-run reservation request ends either as a no-op or as a refused
    append, never as a second Reserved or a rejection turned reservation, whatever happened in
    between (a release, a shipment, a crash, a concurrent run of the same request).

    Decisions stored before decision ids existed carry random ids; the fulfilment process only
    asks for a reservation while the order is pending, so only an old order left pending with
    a closed reservation (a crash mid-rejection, before this release) could be decided again.
    """

    # The shape of the state below, recorded in snapshots: bump it when the attributes change,
    # and snapshots of the old shape are ignored (eventstore/snapshots.py).
    class_version = 2

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

        def unique_id(self) -> UUID:
            """The one id any decision on this order's reservation gets."""
            return decision_id(self.originator_id, self.order_id)

    class ReservationRejected(Aggregate.Event):
        """An order asked for more than was available."""

        sku: str
        order_id: UUID
        quantity: int
        available: int

        def unique_id(self) -> UUID:
            """The one id any decision on this order's reservation gets."""
            return decision_id(self.originator_id, self.order_id)

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
        # Open reservations only: an order's entry goes when it is released or shipped.
        self.reservations: dict[UUID, int] = {}

    @property
    def reserved(self) -> int:
        """Units set aside for orders."""
        return sum(self.reservations.values())

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.on_hand - self.reserved

    def holds(self, order_id: UUID) -> bool:
        """Whether the order holds a reservation now."""
        return order_id in self.reservations

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

    def reserve(self, order_id: UUID, quantity: int) -> Literal["reserved", "rejected"]:
        """Reserve for an order or record the rejection; while it holds one, a no-op.

        A decision made earlier and no longer open is refused by the store (see the class).
        """
        positive(quantity)
        if order_id in self.reservations:
            return "reserved"
        if quantity > self.available:
            self._reservation_rejected(self.sku, order_id, quantity, self.available)
            return "rejected"
        self._reserved(self.sku, order_id, quantity)
        return "reserved"

    def release(self, order_id: UUID) -> None:
        """Give back an order's reservation; a no-op when it holds none."""
        if order_id in self.reservations:
            self._released(self.sku, order_id, self.reservations[order_id])

    def ship(self, order_id: UUID) -> None:
        """Ship an order's reserved units; a no-op when it holds none (shipped already).

        Only a confirmed order ships, and only an order whose every line was reserved is
        confirmed, so an order holding nothing here has shipped or been released before.
        """
        if order_id in self.reservations:
            self._shipped(self.sku, order_id, self.reservations[order_id])

    @event(Received)
    def _received(self, sku: str, quantity: int, reference: str) -> None:
        self.on_hand += quantity

    @event(Adjusted)
    def _adjusted(self, sku: str, delta: int, reason: str) -> None:
        self.on_hand += delta

    @event(Reserved)
    def _reserved(self, sku: str, order_id: UUID, quantity: int) -> None:
        self.reservations[order_id] = quantity

    @event(ReservationRejected)
    def _reservation_rejected(
        self, sku: str, order_id: UUID, quantity: int, available: int
    ) -> None:
        pass  # the event is the record; nothing stays open

    @event(Released)
    def _released(self, sku: str, order_id: UUID, quantity: int) -> None:
        del self.reservations[order_id]

    @event(Shipped)
    def _shipped(self, sku: str, order_id: UUID, quantity: int) -> None:
        del self.reservations[order_id]
        self.on_hand -= quantity
