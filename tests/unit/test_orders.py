"""Order: place, confirm, reject, cancel, ship."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from domain.errors import InvalidOrderTransition, InvalidValue
from domain.orders import Order
from domain.values import OrderLine
from tests.unit.helpers import given, new_events

LINES = [OrderLine("MUG-1", 2, Decimal("9.50")), OrderLine("TEA-1", 1, Decimal("4.25"))]


def placed() -> Order:
    """An order placed in the past."""
    return given(Order.place(uuid4(), LINES))  # type: ignore[return-value]


def test_place_captures_lines_prices_and_total() -> None:
    customer = uuid4()
    order = Order.place(customer, LINES)
    assert new_events(order) == [
        (
            "OrderPlaced",
            {
                "customer_id": str(customer),
                "lines": [
                    {"sku": "MUG-1", "quantity": 2, "unit_price": "9.50"},
                    {"sku": "TEA-1", "quantity": 1, "unit_price": "4.25"},
                ],
                "total": "23.25",
            },
        )
    ]
    assert order.status == "pending"


def test_place_keeps_a_given_id() -> None:
    order_id = uuid4()
    assert Order.place(uuid4(), LINES, id=order_id).id == order_id


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [OrderLine("A", 0, Decimal("1.00"))],
        [OrderLine("A", 1, Decimal("1.00")), OrderLine("A", 2, Decimal("1.00"))],
    ],
)
def test_place_refuses_empty_zero_or_duplicate_lines(lines: list[OrderLine]) -> None:
    with pytest.raises(InvalidValue):
        Order.place(uuid4(), lines)


def test_confirm_then_ship() -> None:
    order = placed()
    order.confirm()
    order.confirm()  # a repeat is a no-op: the process manager may deliver twice
    order.ship()
    assert [name for name, _ in new_events(order)] == ["OrderConfirmed", "OrderShipped"]
    assert order.status == "shipped"


def test_reject_records_the_reason_once() -> None:
    order = placed()
    order.reject("insufficient stock for MUG-1")
    order.reject("insufficient stock for MUG-1")
    assert new_events(order) == [("OrderRejected", {"reason": "insufficient stock for MUG-1"})]
    with pytest.raises(InvalidOrderTransition):
        order.confirm()


@pytest.mark.parametrize("confirm_first", [False, True])
def test_cancel_while_pending_or_confirmed(confirm_first: bool) -> None:
    order = placed()
    if confirm_first:
        order.confirm()
        given(order)
    order.cancel("changed my mind")
    assert new_events(order) == [("OrderCancelled", {"reason": "changed my mind"})]
    assert order.status == "cancelled"


def test_cancelled_orders_cannot_be_cancelled_shipped_or_confirmed() -> None:
    order = placed()
    order.cancel("no")
    given(order)
    for action in (lambda: order.cancel("again"), order.ship, order.confirm):
        with pytest.raises(InvalidOrderTransition):
            action()
    assert new_events(order) == []


def test_ship_only_when_confirmed() -> None:
    order = placed()
    with pytest.raises(InvalidOrderTransition):
        order.ship()
    order.reject("no stock")
    given(order)
    with pytest.raises(InvalidOrderTransition):
        order.ship()
