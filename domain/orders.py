"""Orders: placed with priced lines, then confirmed or rejected, cancelled or shipped."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidOrderTransition, InvalidValue
from domain.values import MAX_LINES, MAX_ORDER_TOTAL, OrderLine, positive, within

PENDING, CONFIRMED, REJECTED, CANCELLED, SHIPPED = (
    "pending",
    "confirmed",
    "rejected",
    "cancelled",
    "shipped",
)


class Order(Aggregate):
    """A customer's order; its lines keep the unit price current when it was placed."""

    class Placed(Aggregate.Created):
        """A customer placed an order."""

        customer_id: UUID
        lines: tuple[OrderLine, ...]
        total: Decimal

    class Confirmed(Aggregate.Event):
        """Every line was reserved."""

    class Rejected(Aggregate.Event):
        """The order could not be fulfilled."""

        reason: str

    class Cancelled(Aggregate.Event):
        """The order was called off."""

        reason: str

    class Shipped(Aggregate.Event):
        """The order left the warehouse."""

    @classmethod
    def place(cls, customer_id: UUID, lines: list[OrderLine], id: UUID | None = None) -> Order:
        """Place an order for priced lines (one line per SKU); `id` defaults to a new UUID."""
        if not 1 <= len(lines) <= MAX_LINES:
            raise InvalidValue(f"an order needs 1 to {MAX_LINES} lines, got {len(lines)}")
        skus = [line.sku for line in lines]
        if len(set(skus)) != len(skus):
            raise InvalidValue("each SKU may appear on one line only")
        for line in lines:
            positive(line.quantity)
        total = sum((line.subtotal for line in lines), Decimal("0.00"))
        # Prices come from the catalog, so only the domain can see the total: a broken rule.
        within(total, MAX_ORDER_TOTAL, "order total")
        return cls._create(
            cls.Placed, id=id, customer_id=customer_id, lines=tuple(lines), total=total
        )

    @event(Placed)
    def __init__(self, customer_id: UUID, lines: tuple[OrderLine, ...], total: Decimal):
        self.customer_id = customer_id
        self.lines = lines
        self.total = total
        self.status = PENDING
        self.reason = ""

    def check_status(self, *allowed: str, action: str) -> None:
        """Refuse `action` unless the order is in one of the `allowed` statuses."""
        if self.status not in allowed:
            raise InvalidOrderTransition(f"cannot {action} an order that is {self.status}")

    def confirm(self) -> None:
        """Confirm a pending order; a repeat is a no-op."""
        if self.status != CONFIRMED:
            self.check_status(PENDING, action="confirm")
            self._confirmed()

    def reject(self, reason: str) -> None:
        """Reject a pending order; a repeat is a no-op."""
        if self.status != REJECTED:
            self.check_status(PENDING, action="reject")
            self._rejected(reason)

    def cancel(self, reason: str) -> None:
        """Cancel an order that is pending or confirmed."""
        self.check_status(PENDING, CONFIRMED, action="cancel")
        self._cancelled(reason)

    def ship(self) -> None:
        """Ship a confirmed order."""
        self.check_status(CONFIRMED, action="ship")
        self._shipped()

    @event(Confirmed)
    def _confirmed(self) -> None:
        self.status = CONFIRMED

    @event(Rejected)
    def _rejected(self, reason: str) -> None:
        self.status, self.reason = REJECTED, reason

    @event(Cancelled)
    def _cancelled(self, reason: str) -> None:
        self.status, self.reason = CANCELLED, reason

    @event(Shipped)
    def _shipped(self) -> None:
        self.status = SHIPPED
