"""StockItem: receive, adjust, reserve, release, ship."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import InsufficientStock, InvalidValue
from domain.inventory import StockItem, decision_id
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


def test_a_closed_decision_asked_again_gets_the_same_event_id() -> None:
    # The item forgets a rejected order (bounded state); the repeat's decision event carries
    # the first one's id, so the store refuses it (tests/contract/test_reservation_once.py).
    item, order = stocked(1), uuid4()
    item.reserve(order, 5)
    first = item.collect_events()[-1]
    item.receive(10)
    given(item)
    item.reserve(order, 5)
    again = item.collect_events()[-1]
    assert isinstance(first, StockItem.ReservationRejected)
    assert isinstance(again, StockItem.Reserved)
    assert first.unique_id() == again.unique_id() == decision_id(item.id, order)


def test_decision_ids_differ_per_order_and_per_item() -> None:
    order, other = uuid4(), uuid4()
    mug, tea = stock_item_id("MUG-1"), stock_item_id("TEA-1")
    ids = {decision_id(mug, order), decision_id(mug, other), decision_id(tea, order)}
    assert len(ids) == 3
    assert decision_id(mug, order) == decision_id(mug, order)


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


def test_ship_without_a_reservation_is_a_no_op() -> None:
    item = stocked()
    item.ship(uuid4())
    assert new_events(item) == []


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


def test_state_keeps_open_reservations_only() -> None:
    item = stocked(1_000)
    for _ in range(200):
        kept, rejected, shipped = uuid4(), uuid4(), uuid4()
        item.reserve(kept, 1)
        item.release(kept)
        item.reserve(shipped, 1)
        item.ship(shipped)
        item.reserve(rejected, 10_000)
    still_open = uuid4()
    item.reserve(still_open, 2)
    assert item.reservations == {still_open: 2}
    assert set(vars(item)) == {
        "_id", "_version", "_created_on", "_modified_on", "_pending_events",
        "sku", "on_hand", "reservations",
    }  # fmt: skip
    assert item.holds(still_open) and not item.holds(uuid4())
