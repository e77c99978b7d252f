"""Catalog and stock command handlers: given past commands, when one runs, then its events."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from domain import commands
from domain.errors import (
    AlreadyExists,
    InsufficientStock,
    InvalidValue,
    LimitExceeded,
    NotFound,
    ProductDiscontinued,
)
from domain.values import MAX_ON_HAND, product_id, stock_item_id
from eventstore.loading import StreamTypeMismatch
from eventstore.repository import Context, PreconditionFailed
from tests.unit.scenario import Scenario, order, product

MUG = product_id("MUG-1")


@pytest.fixture
def s() -> Scenario:
    """An empty in-memory store."""
    return Scenario()


async def test_register_product_records_it_under_the_skus_stream(s: Scenario) -> None:
    outcome = await s.when(product(" mug-1 ", "9.5"))
    assert (outcome.stream_id, outcome.version, outcome.created) == (MUG, 1, True)
    registered = {"sku": "MUG-1", "name": "Mug", "description": "", "price": "9.50"}
    registered |= {"category": "kitchen", "unit": "each"}
    assert s.then() == [("ProductRegistered", registered)]


async def test_registering_a_taken_sku_is_refused_whatever_its_case(s: Scenario) -> None:
    await s.given(product("MUG-1"))
    with pytest.raises(AlreadyExists):
        await s.when(product("mug-1", "1.00"))
    assert s.then() == []


async def test_rename_and_reprice_a_product(s: Scenario) -> None:
    await s.given(product("MUG-1"))
    renamed = await s.when(commands.RenameProduct(MUG, "Cup"))
    assert (renamed.version, renamed.created) == (2, False)
    assert s.then() == [("ProductRenamed", {"name": "Cup"})]
    repriced = await s.when(commands.RepriceProduct(MUG, Decimal("12")))
    assert repriced.version == 3
    assert s.then() == [("ProductRepriced", {"price": "12.00"})]


@pytest.mark.parametrize(
    "command",
    [
        commands.RenameProduct(MUG, "Cup"),
        commands.RepriceProduct(MUG, Decimal("1.00")),
        commands.DiscontinueProduct(MUG, "again"),
    ],
)
async def test_a_discontinued_product_accepts_no_change(s: Scenario, command: object) -> None:
    await s.given(product("MUG-1"), commands.DiscontinueProduct(MUG, "end of line"))
    with pytest.raises(ProductDiscontinued):
        await s.when(command)
    assert s.then() == []


async def test_discontinue_records_the_reason(s: Scenario) -> None:
    await s.given(product("MUG-1"))
    await s.when(commands.DiscontinueProduct(MUG, "end of line"))
    assert s.then() == [("ProductDiscontinued", {"reason": "end of line"})]


@pytest.mark.parametrize("price", ["0", "-1.00", "1.234", "1000000.01"])
async def test_reprice_to_an_invalid_price_is_refused(s: Scenario, price: str) -> None:
    await s.given(product("MUG-1"))
    with pytest.raises(InvalidValue):
        await s.when(commands.RepriceProduct(MUG, Decimal(price)))
    assert s.then() == []


async def test_a_command_on_an_unknown_product_is_not_found(s: Scenario) -> None:
    with pytest.raises(NotFound):
        await s.when(commands.RenameProduct(uuid4(), "Cup"))
    assert s.then() == []


async def test_a_product_command_naming_another_kind_of_stream_is_refused(s: Scenario) -> None:
    await s.given(product("MUG-1"), commands.ReceiveStock("MUG-1", 1))
    [placed] = await s.given(order(("MUG-1", 1)))
    for stream_id in (stock_item_id("MUG-1"), placed.stream_id):
        with pytest.raises(StreamTypeMismatch):
            await s.when(commands.RenameProduct(stream_id, "Cup"))
    assert s.then() == []


async def test_if_match_naming_another_version_is_a_precondition_failure(s: Scenario) -> None:
    await s.given(product("MUG-1"), commands.RenameProduct(MUG, "Cup"))
    with pytest.raises(PreconditionFailed) as failed:
        await s.when(commands.RenameProduct(MUG, "Jug"), Context(expected_version=1))
    assert (failed.value.expected, failed.value.actual) == (1, 2)
    assert s.then() == []
    outcome = await s.when(commands.RenameProduct(MUG, "Jug"), Context(expected_version=2))
    assert outcome.version == 3 and s.then() == [("ProductRenamed", {"name": "Jug"})]


async def test_metadata_is_recorded_with_the_events(s: Scenario) -> None:
    await s.when(product("MUG-1"), Context({"actor": "alice", "correlation_id": "c-1"}))
    assert s.store.events[-1].metadata == {"actor": "alice", "correlation_id": "c-1"}


async def test_stock_of_an_unregistered_sku_cannot_be_received(s: Scenario) -> None:
    with pytest.raises(NotFound):
        await s.when(commands.ReceiveStock("MUG-1", 5))
    assert s.then() == []


async def test_the_first_receipt_opens_the_stock_record(s: Scenario) -> None:
    await s.given(product("MUG-1"))
    first = await s.when(commands.ReceiveStock("mug-1", 5, "PO-1"))
    assert (first.stream_id, first.version, first.created) == (stock_item_id("MUG-1"), 2, True)
    assert s.then() == [
        ("StockItemOpened", {"sku": "MUG-1"}),
        ("StockReceived", {"sku": "MUG-1", "quantity": 5, "reference": "PO-1"}),
    ]
    second = await s.when(commands.ReceiveStock("MUG-1", 3))
    assert (second.version, second.created) == (3, False)
    assert s.then() == [("StockReceived", {"sku": "MUG-1", "quantity": 3, "reference": ""})]


async def test_receiving_past_the_on_hand_limit_is_refused(s: Scenario) -> None:
    await s.given(product("MUG-1"), commands.ReceiveStock("MUG-1", MAX_ON_HAND))
    with pytest.raises(LimitExceeded):
        await s.when(commands.ReceiveStock("MUG-1", 1))
    assert s.then() == []


async def test_adjust_corrects_the_count(s: Scenario) -> None:
    await s.given(product("MUG-1"), commands.ReceiveStock("MUG-1", 5))
    await s.when(commands.AdjustStock("MUG-1", -2, "breakage"))
    assert s.then() == [("StockAdjusted", {"sku": "MUG-1", "delta": -2, "reason": "breakage"})]


async def test_adjust_never_takes_stock_below_what_is_reserved(s: Scenario) -> None:
    await s.given(product("MUG-1"), commands.ReceiveStock("MUG-1", 5), order(("MUG-1", 3)))
    await s.fulfil()  # reserves 3 of the 5
    with pytest.raises(InsufficientStock):
        await s.when(commands.AdjustStock("MUG-1", -3, "count"))
    assert s.then() == []
    await s.when(commands.AdjustStock("MUG-1", -2, "count"))
    assert [t for t, _ in s.then()] == ["StockAdjusted"]


async def test_adjusting_stock_never_received_is_not_found(s: Scenario) -> None:
    await s.given(product("MUG-1"))
    with pytest.raises(NotFound):
        await s.when(commands.AdjustStock("MUG-1", 1, "count"))
    assert s.then() == []
