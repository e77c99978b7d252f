"""StockItem: receive, adjust, reserve, release, ship."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import DomainError, InsufficientStock, InvalidValue
from domain.inventory import StockItem
from domain.values import stock_item_id
from tests.unit.helpers import given, new_events


def stocked(on_hand: int = 10) -> StockItem:
    """A stock item that received `on_hand` units in the past."""
    item = StockItem.open("mug-1")
    item.receive(on_hand, "PO-1")
    return given(item)  # type: ignore[return-value]


def reserved(quantity: int, on_hand: int = 10) -> tuple[StockItem, UUID]:
    """A stock item with one order's reservation in the past."""
    item, order = stocked(on_hand), uuid4()
    item.reserve(order, quantity)
    return given(item), order  # type: ignore[return-value]


def test_first_receipt_opens_the_sku_stream() -> None:
    item = StockItem.open("mug-1")
    item.receive(5, "PO-1")
    assert item.id == stock_item_id("MUG-1")
    assert new_events(item) == [
        ("StockItemOpened", {"sku": "MUG-1"}),
        ("StockReceived", {"sku": "MUG-1", "quantity": 5, "reference": "PO-1"}),
    ]
    assert (item.on_hand, item.available) == (5, 5)


@pytest.mark.parametrize("quantity", [0, -3])
def test_receive_refuses_non_positive_quantities(quantity: int) -> None:
    with pytest.raises(InvalidValue):
        stocked().receive(quantity)


def test_reserve_sets_stock_aside_for_the_order() -> None:
    item, order = stocked(10), uuid4()
    item.reserve(order, 4)
    assert new_events(item) == [
        ("StockReserved", {"sku": "MUG-1", "order_id": str(order), "quantity": 4})
    ]
    assert (item.on_hand, item.reserved, item.available) == (10, 4, 6)


def test_reserve_more_than_available_records_a_rejection() -> None:
    item, _ = reserved(8, on_hand=10)
    second = uuid4()
    item.reserve(second, 3)
    assert new_events(item) == [
        (
            "StockReservationRejected",
            {"sku": "MUG-1", "order_id": str(second), "quantity": 3, "available": 2},
        )
    ]
    assert item.reserved == 8


def test_reserving_twice_for_the_same_order_is_a_no_op() -> None:
    item, order = reserved(4)
    item.reserve(order, 4)
    item.reserve(order, 9)
    assert new_events(item) == []
    assert item.reserved == 4


def test_a_rejected_order_asking_again_is_a_no_op() -> None:
    item, order = stocked(1), uuid4()
    item.reserve(order, 5)
    given(item)
    item.receive(10)
    given(item)
    item.reserve(order, 5)
    assert new_events(item) == []


def test_release_gives_the_reservation_back_once() -> None:
    item, order = reserved(4)
    item.release(order)
    item.release(order)
    assert new_events(item) == [
        ("StockReleased", {"sku": "MUG-1", "order_id": str(order), "quantity": 4})
    ]
    assert (item.reserved, item.available) == (0, 10)


def test_release_without_reservation_is_a_no_op() -> None:
    item = stocked()
    item.release(uuid4())
    assert new_events(item) == []


def test_ship_takes_reserved_units_off_hand_once() -> None:
    item, order = reserved(4)
    item.ship(order)
    item.ship(order)
    assert new_events(item) == [
        ("StockShipped", {"sku": "MUG-1", "order_id": str(order), "quantity": 4})
    ]
    assert (item.on_hand, item.reserved) == (6, 0)


def test_ship_without_a_reservation_is_refused() -> None:
    with pytest.raises(DomainError):
        stocked().ship(uuid4())


def test_adjust_never_goes_below_reserved() -> None:
    item, _ = reserved(7, on_hand=10)
    with pytest.raises(InsufficientStock):
        item.adjust(-4, "count")
    item.adjust(-3, "count")
    assert new_events(item) == [("StockAdjusted", {"sku": "MUG-1", "delta": -3, "reason": "count"})]
    assert (item.on_hand, item.available) == (7, 0)


def test_adjust_never_goes_below_zero_and_refuses_zero() -> None:
    item = stocked(2)
    with pytest.raises(InsufficientStock):
        item.adjust(-3, "count")
    with pytest.raises(InvalidValue):
        item.adjust(0, "nothing")
    item.adjust(+5, "found more")
    assert item.on_hand == 7


def test_the_decision_for_an_order_is_remembered() -> None:
    item, reserved_order = reserved(8, on_hand=10)
    rejected_order = uuid4()
    item.reserve(rejected_order, 5)
    item.release(reserved_order)
    assert item.decision(reserved_order) == "reserved"
    assert item.decision(rejected_order) == "rejected"
    assert item.decision(uuid4()) is None
