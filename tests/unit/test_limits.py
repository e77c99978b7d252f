"""Domain limits: the largest values pass, one past them is refused (values 422, totals 409).

The limits keep every integer a read model stores (cents, units) inside int64; see
domain/values.py for the argument.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from domain.catalog import Product
from domain.errors import InvalidValue, LimitExceeded
from domain.inventory import StockItem
from domain.orders import Order
from domain.values import (
    MAX_LINES,
    MAX_ON_HAND,
    MAX_ORDER_TOTAL,
    MAX_PRICE,
    MAX_QUANTITY,
    OrderLine,
)
from tests.unit.helpers import given, new_events

CENT = Decimal("0.01")
INT64_MAX = 2**63 - 1


def stocked(on_hand: int) -> StockItem:
    """A stock item holding `on_hand` units (received in the past)."""
    item = StockItem.open("bulk-1")
    item.receive(on_hand)
    return given(item)  # type: ignore[return-value]


def lines(count: int, quantity: int, price: Decimal) -> list[OrderLine]:
    """`count` lines of distinct SKUs."""
    return [OrderLine(f"SKU-{i}", quantity, price) for i in range(count)]


def test_the_limits_keep_read_model_sums_inside_int64() -> None:
    # A day's revenue is a sum of order totals: 9e8 orders at the largest total still fit.
    assert int(MAX_ORDER_TOTAL * 100) * 900_000_000 < INT64_MAX
    assert int(MAX_PRICE * 100) * MAX_QUANTITY * MAX_LINES < INT64_MAX
    assert MAX_ON_HAND * 2 < INT64_MAX  # on hand + reserved never exceed twice on hand


def test_a_product_at_the_largest_price_is_registered_and_one_cent_more_is_refused() -> None:
    product = Product.register("dear-1", "Dear", "", MAX_PRICE, "luxury")
    assert new_events(product)[0][1]["price"] == "1000000.00"
    with pytest.raises(InvalidValue, match=r"price must be at most 1000000\.00"):
        Product.register("dear-2", "Dear", "", MAX_PRICE + CENT, "luxury")


def test_reprice_refuses_one_cent_past_the_largest_price() -> None:
    product = given(Product.register("dear-1", "Dear", "", Decimal("1.00"), "luxury"))
    product.reprice(MAX_PRICE)  # type: ignore[attr-defined]
    with pytest.raises(InvalidValue, match=r"at most 1000000\.00"):
        product.reprice(MAX_PRICE + CENT)  # type: ignore[attr-defined]
    assert new_events(product) == [("ProductRepriced", {"price": "1000000.00"})]


def test_an_order_at_exactly_the_total_limit_is_placed() -> None:
    order = Order.place(uuid4(), [OrderLine("DEAR-1", 100, MAX_PRICE)])
    assert order.total == MAX_ORDER_TOTAL


def test_an_order_one_cent_past_the_total_limit_is_a_broken_rule() -> None:
    over = [OrderLine("DEAR-1", 100, MAX_PRICE), OrderLine("PENNY-1", 1, CENT)]
    with pytest.raises(LimitExceeded, match=r"order total would be 100000000\.01, over the limit"):
        Order.place(uuid4(), over)


def test_an_order_of_the_most_lines_at_the_largest_quantity_is_placed() -> None:
    order = Order.place(uuid4(), lines(MAX_LINES, MAX_QUANTITY, CENT))
    assert (len(order.lines), order.total) == (100, Decimal("1000000.00"))


def test_one_line_too_many_is_refused() -> None:
    with pytest.raises(InvalidValue, match="1 to 100 lines, got 101"):
        Order.place(uuid4(), lines(MAX_LINES + 1, 1, CENT))


def test_one_unit_past_the_largest_line_quantity_is_refused() -> None:
    with pytest.raises(InvalidValue, match="quantity must be at most 1000000"):
        Order.place(uuid4(), lines(1, MAX_QUANTITY + 1, CENT))


def test_stock_is_received_up_to_the_on_hand_limit_and_no_further() -> None:
    item = stocked(MAX_ON_HAND - 1)
    item.receive(1)
    assert item.on_hand == MAX_ON_HAND
    with pytest.raises(LimitExceeded, match="stock on hand would be 1000000000001"):
        item.receive(1)
    assert new_events(item) == [
        ("StockReceived", {"sku": "BULK-1", "quantity": 1, "reference": ""})
    ]


def test_one_receipt_past_the_on_hand_limit_is_an_invalid_value() -> None:
    with pytest.raises(InvalidValue, match="at most 1000000000000"):
        StockItem.open("bulk-1").receive(MAX_ON_HAND + 1)


def test_an_adjustment_up_to_the_on_hand_limit_passes_and_one_past_is_refused() -> None:
    item = stocked(10)
    item.adjust(MAX_ON_HAND - 10, "count")
    assert item.on_hand == MAX_ON_HAND
    with pytest.raises(LimitExceeded, match="over the limit of 1000000000000"):
        item.adjust(1, "count")
    with pytest.raises(InvalidValue, match="at most 1000000000000"):
        stocked(10).adjust(-(MAX_ON_HAND + 1), "count")
