"""Each order's reservation on a SKU is decided exactly once, with a stock item that remembers
only its open reservations: the store's unique event ids refuse a second decision."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from command_api import handlers
from domain import commands
from domain.inventory import StockItem, decision_id
from domain.orders import Order
from domain.values import stock_item_id
from eventstore.base import EventStore
from eventstore.records import DuplicateEvent
from eventstore.repository import Context, Repository
from tests.contract.aggregates import new_sku
from tests.contract.conftest import OpenStore
from workers.fulfilment import FulfilmentProcess

DECISIONS = {"StockReserved", "StockReservationRejected"}


async def stocked(repo: Repository, on_hand: int) -> tuple[str, UUID]:
    """A new SKU's product and stock with `on_hand` units."""
    sku = new_sku()
    register = commands.RegisterProduct(sku, "Mug", Decimal("2.50"), "kitchen")
    await handlers.register_product(register, repo, Context())
    await handlers.receive_stock(commands.ReceiveStock(sku, on_hand, "PO-1"), repo, Context())
    return sku, stock_item_id(sku)


async def run(repo: Repository, stream: UUID, *changes: str, order: UUID, qty: int = 2) -> None:
    """Apply stock changes for `order` ("reserve", "release", "ship", "receive") in turn."""
    for change in changes:

        def decide(item: StockItem | None, change: str = change) -> StockItem | None:
            assert item is not None
            if change == "reserve":
                item.reserve(order, qty)
            elif change == "receive":
                item.receive(100)
            else:
                getattr(item, change)(order)
            return item

        await repo.execute(StockItem, stream, decide)


async def decisions(store: EventStore, stream: UUID, order: UUID) -> list[str]:
    """The decision events on `stream` for `order`."""
    events = await store.read_stream(stream)
    return [e.type for e in events if e.type in DECISIONS and e.data["order_id"] == str(order)]


async def test_reserving_twice_is_a_no_op(open_store: OpenStore) -> None:
    store = open_store()
    repo = Repository(store)
    _, stream = await stocked(repo, 10)
    order = uuid4()
    await run(repo, stream, "reserve", "reserve", order=order)
    await run(Repository(store), stream, "reserve", order=order)  # a cold process, too
    assert await decisions(store, stream, order) == ["StockReserved"]
    stored = [e for e in await store.read_stream(stream) if e.type == "StockReserved"]
    assert stored[0].event_id == decision_id(stream, order)


@pytest.mark.parametrize(
    "closed_by", [("reserve", "release"), ("reserve", "ship")], ids=["released", "shipped"]
)
async def test_reserving_after_the_reservation_closed_is_refused(
    open_store: OpenStore, closed_by: tuple[str, ...]
) -> None:
    store = open_store()
    repo = Repository(store)
    _, stream = await stocked(repo, 10)
    order = uuid4()
    await run(repo, stream, *closed_by, order=order)
    before = await store.read_stream(stream)
    for attempt in (repo, Repository(store)):  # warm and cold
        with pytest.raises(DuplicateEvent):
            await run(attempt, stream, "reserve", order=order)
    assert await store.read_stream(stream) == before
    loaded = await Repository(store).get(StockItem, stream)
    assert loaded is not None and loaded.aggregate.reservations == {}


async def test_a_rejection_stays_a_rejection_when_stock_arrives(open_store: OpenStore) -> None:
    store = open_store()
    repo = Repository(store)
    _, stream = await stocked(repo, 1)
    order = uuid4()
    await run(repo, stream, "reserve", "receive", order=order, qty=5)
    with pytest.raises(DuplicateEvent):
        await run(Repository(store), stream, "reserve", order=order, qty=5)
    assert await decisions(store, stream, order) == ["StockReservationRejected"]


async def test_racing_reservations_for_one_order_decide_once(open_store: OpenStore) -> None:
    store = open_store()
    _, stream = await stocked(Repository(store), 10)
    order = uuid4()
    racers = [Repository(open_store()) for _ in range(6)]
    results = await asyncio.gather(
        *(run(r, stream, "reserve", order=order) for r in racers), return_exceptions=True
    )
    assert all(r is None or isinstance(r, DuplicateEvent) for r in results), results
    assert await decisions(store, stream, order) == ["StockReserved"]
    loaded = await Repository(store).get(StockItem, stream)
    assert loaded is not None and loaded.aggregate.reservations == {order: 2}


async def placed(repo: Repository, *lines: tuple[str, int]) -> UUID:
    """Place an order for `lines` (SKUs that `stocked` made)."""
    requested = tuple(commands.RequestedLine(sku, qty) for sku, qty in lines)
    outcome = await handlers.place_order(commands.PlaceOrder(uuid4(), requested), repo, Context())
    return outcome.stream_id


async def test_fulfilment_re_run_after_a_crash_mid_rejection(open_store: OpenStore) -> None:
    store = open_store()
    repo = Repository(store)
    (plenty, plenty_id), (scarce, scarce_id) = await stocked(repo, 10), await stocked(repo, 1)
    order = await placed(repo, (plenty, 2), (scarce, 5))
    # The first run reserved one line, was refused the other, released the first, then died
    # before telling the order.
    crashed = FulfilmentProcess(Repository(store))
    context = Context()
    assert await crashed.reserve(order, plenty, 2, context) == "reserved"
    assert await crashed.reserve(order, scarce, 5, context) == "rejected"
    await crashed.release_all(order, [plenty, scarce], context)
    await handlers.receive_stock(commands.ReceiveStock(scarce, 50, "PO-2"), repo, Context())
    # Redelivered: the re-run must not reserve now that stock has arrived.
    placed_event = (await store.read_stream(order))[0]
    await FulfilmentProcess(Repository(store)).apply([placed_event])
    loaded = await Repository(store).get(Order, order)
    assert loaded is not None and loaded.aggregate.status == "rejected"
    assert await decisions(store, plenty_id, order) == ["StockReserved"]
    assert await decisions(store, scarce_id, order) == ["StockReservationRejected"]
    for stream in (plenty_id, scarce_id):
        item = await Repository(store).get(StockItem, stream)
        assert item is not None and item.aggregate.reservations == {}


async def test_fulfilment_re_run_after_a_crash_before_confirming(open_store: OpenStore) -> None:
    store = open_store()
    repo = Repository(store)
    (mug, mug_id), (tea, tea_id) = await stocked(repo, 10), await stocked(repo, 10)
    order = await placed(repo, (mug, 2), (tea, 3))
    crashed = FulfilmentProcess(Repository(store))
    await crashed.reserve(order, mug, 2, Context())
    await crashed.reserve(order, tea, 3, Context())  # then died before confirming
    placed_event = (await store.read_stream(order))[0]
    for _ in range(2):  # redelivered, twice
        await FulfilmentProcess(Repository(store)).apply([placed_event])
    loaded = await Repository(store).get(Order, order)
    assert loaded is not None and loaded.aggregate.status == "confirmed"
    assert await decisions(store, mug_id, order) == ["StockReserved"]
    assert await decisions(store, tea_id, order) == ["StockReserved"]
    tea_item = await Repository(store).get(StockItem, tea_id)
    assert tea_item is not None and tea_item.aggregate.reservations == {order: 3}
