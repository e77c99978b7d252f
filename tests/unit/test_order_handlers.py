"""Order command handlers and the fulfilment process they set off, over the in-memory store."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from domain import commands
from domain.errors import (
    AlreadyExists,
    InvalidOrderTransition,
    LimitExceeded,
    NotFound,
    ProductDiscontinued,
    UnknownProduct,
)
from domain.values import MAX_PRICE, product_id
from eventstore.repository import Context, PreconditionFailed
from tests.unit.scenario import Scenario, order, product


@pytest.fixture
async def s() -> Scenario:
    """A mug at 9.50 and tea at 4.25, five of each in stock."""
    scenario = Scenario()
    await scenario.given(product("MUG-1", "9.50"), product("TEA-1", "4.25"))
    await scenario.given(commands.ReceiveStock("MUG-1", 5), commands.ReceiveStock("TEA-1", 5))
    return scenario


async def placed(s: Scenario, *lines: tuple[str, int]) -> commands.PlaceOrder:
    """An order placed in the past (not yet seen by fulfilment)."""
    command = order(*lines)
    await s.given(command)
    return command


async def test_place_order_captures_current_prices_and_the_total(s: Scenario) -> None:
    await s.given(commands.RepriceProduct(product_id("TEA-1"), Decimal("5.00")))
    command = order(("mug-1", 2), ("TEA-1", 1))
    outcome = await s.when(command)
    assert (outcome.stream_id, outcome.version, outcome.created) == (command.order_id, 1, True)
    lines = [
        {"sku": "MUG-1", "quantity": 2, "unit_price": "9.50"},
        {"sku": "TEA-1", "quantity": 1, "unit_price": "5.00"},
    ]
    data = {"customer_id": str(command.customer_id), "lines": lines, "total": "24.00"}
    assert s.then() == [("OrderPlaced", data)]


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ((), UnknownProduct),
        ((commands.DiscontinueProduct(product_id("TEA-1")),), ProductDiscontinued),
    ],
)
async def test_an_order_for_an_unknown_or_discontinued_sku_is_refused(
    s: Scenario, given: tuple[object, ...], error: type[Exception]
) -> None:
    await s.given(*given)
    sku = "TEA-1" if given else "NOPE-1"
    with pytest.raises(error):
        await s.when(order(("MUG-1", 1), (sku, 1)))
    assert s.then() == []


async def test_an_order_over_the_total_limit_is_refused(s: Scenario) -> None:
    await s.given(commands.RepriceProduct(product_id("MUG-1"), MAX_PRICE))
    with pytest.raises(LimitExceeded):
        await s.when(order(("MUG-1", 101)))  # 101 x 1,000,000.00 > 100,000,000.00
    assert s.then() == []


async def test_an_order_id_is_placed_once(s: Scenario) -> None:
    command = await placed(s, ("MUG-1", 1))
    with pytest.raises(AlreadyExists):
        await s.when(command)
    assert s.then() == []


async def test_fulfilment_reserves_every_line_then_confirms(s: Scenario) -> None:
    command = await placed(s, ("MUG-1", 2), ("TEA-1", 5))
    await s.fulfil()
    oid = str(command.order_id)
    assert s.then() == [
        ("StockReserved", {"sku": "MUG-1", "order_id": oid, "quantity": 2}),
        ("StockReserved", {"sku": "TEA-1", "order_id": oid, "quantity": 5}),
        ("OrderConfirmed", {}),
    ]


async def test_reserving_beyond_what_is_available_rejects_the_order(s: Scenario) -> None:
    await placed(s, ("TEA-1", 3))
    await s.fulfil()
    command = await placed(s, ("MUG-1", 1), ("TEA-1", 3))  # only 2 tea left
    await s.fulfil()
    oid = str(command.order_id)
    assert s.then() == [
        ("StockReserved", {"sku": "MUG-1", "order_id": oid, "quantity": 1}),
        (
            "StockReservationRejected",
            {"sku": "TEA-1", "order_id": oid, "quantity": 3, "available": 2},
        ),
        ("StockReleased", {"sku": "MUG-1", "order_id": oid, "quantity": 1}),
        ("OrderRejected", {"reason": "insufficient stock for TEA-1 (rejected)"}),
    ]


async def test_fulfilment_run_again_on_the_same_events_changes_nothing(s: Scenario) -> None:
    await placed(s, ("MUG-1", 2))
    await s.fulfil()
    before = len(s.store.events)
    s.rewind_fulfilment()
    await s.fulfil()
    assert len(s.store.events) == before


async def test_cancel_a_pending_or_confirmed_order(s: Scenario) -> None:
    pending = await placed(s, ("MUG-1", 1))
    await s.when(commands.CancelOrder(pending.order_id, "changed my mind"))
    assert s.then() == [("OrderCancelled", {"reason": "changed my mind"})]
    confirmed = await placed(s, ("MUG-1", 2))
    await s.fulfil()
    await s.when(commands.CancelOrder(confirmed.order_id, "too slow"))
    assert s.then() == [("OrderCancelled", {"reason": "too slow"})]
    await s.fulfil()  # the cancellation gives the reserved stock back
    oid = str(confirmed.order_id)
    assert s.then() == [("StockReleased", {"sku": "MUG-1", "order_id": oid, "quantity": 2})]


async def test_a_cancelled_order_cannot_be_cancelled_or_shipped(s: Scenario) -> None:
    command = await placed(s, ("MUG-1", 1))
    await s.given(commands.CancelOrder(command.order_id, "x"))
    for again in (
        commands.CancelOrder(command.order_id, "y"),
        commands.ShipOrder(command.order_id),
    ):
        with pytest.raises(InvalidOrderTransition):
            await s.when(again)
    assert s.then() == []


async def test_ship_only_when_confirmed(s: Scenario) -> None:
    command = await placed(s, ("MUG-1", 2))
    with pytest.raises(InvalidOrderTransition):
        await s.when(commands.ShipOrder(command.order_id))  # still pending
    assert s.then() == []
    await s.fulfil()
    outcome = await s.when(commands.ShipOrder(command.order_id))
    assert outcome.version == 3 and s.then() == [("OrderShipped", {})]
    await s.fulfil()  # the reserved stock leaves the warehouse
    oid = str(command.order_id)
    assert s.then() == [("StockShipped", {"sku": "MUG-1", "order_id": oid, "quantity": 2})]
    with pytest.raises(InvalidOrderTransition):
        await s.when(commands.ShipOrder(command.order_id))


async def test_commands_on_an_unknown_order_are_not_found(s: Scenario) -> None:
    for command in (commands.CancelOrder(uuid4(), "x"), commands.ShipOrder(uuid4())):
        with pytest.raises(NotFound):
            await s.when(command)
    assert s.then() == []


async def test_if_match_on_an_order(s: Scenario) -> None:
    command = await placed(s, ("MUG-1", 1))
    with pytest.raises(PreconditionFailed):
        await s.when(commands.CancelOrder(command.order_id, "x"), Context(expected_version=2))
    assert s.then() == []
    await s.when(commands.CancelOrder(command.order_id, "x"), Context(expected_version=1))
    assert [t for t, _ in s.then()] == ["OrderCancelled"]
