"""Orders priced from cached products, over every store: one round trip when the cache is
current, the store's price whenever another process changed the product meanwhile."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from command_api import handlers
from domain import commands
from domain.catalog import Product
from domain.errors import ProductDiscontinued
from domain.orders import Order
from domain.values import product_id
from eventstore.repository import Context, Repository
from tests.contract.aggregates import CountingStore, discontinue, new_sku, register, reprice
from tests.contract.conftest import OpenStore


def order_of(*skus: str) -> commands.PlaceOrder:
    """One of each SKU."""
    lines = tuple(commands.RequestedLine(sku, 1) for sku in skus)
    return commands.PlaceOrder(uuid.uuid4(), lines)


async def placed(repo: Repository, order_id: uuid.UUID) -> Order:
    """The order as stored."""
    loaded = await Repository(repo.store).get(Order, order_id)
    assert loaded is not None
    return loaded.aggregate


async def test_an_order_on_cached_products_reads_nothing(open_store: OpenStore) -> None:
    store = CountingStore(open_store())
    repo = Repository(store)
    skus = [new_sku(), new_sku()]
    for sku in skus:
        await repo.execute(Product, product_id(sku), register(sku))
    before = store.reads
    outcome = await handlers.place_order(order_of(*skus), repo, Context())
    assert (outcome.version, outcome.created, store.reads - before) == (1, True, 0)
    order = await placed(repo, outcome.stream_id)
    assert order.total == Decimal("6.00")


async def test_another_process_repriced_so_the_order_takes_the_stored_price(
    open_store: OpenStore,
) -> None:
    mine, theirs = Repository(open_store()), Repository(open_store())
    sku, other = new_sku(), new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    await mine.execute(Product, product_id(other), register(other))
    await theirs.execute(Product, product_id(sku), reprice("5.00"))  # mine still has 3.00
    outcome = await handlers.place_order(order_of(sku, other), mine, Context())
    order = await placed(mine, outcome.stream_id)
    assert [line.unit_price for line in order.lines] == [Decimal("5.00"), Decimal("3.00")]
    assert order.total == Decimal("8.00")
    assert len(await mine.store.read_stream(outcome.stream_id)) == 1  # placed once


async def test_another_process_discontinued_so_the_order_is_refused(
    open_store: OpenStore,
) -> None:
    mine, theirs = Repository(open_store()), Repository(open_store())
    sku = new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    await theirs.execute(Product, product_id(sku), discontinue())
    command = order_of(sku)
    with pytest.raises(ProductDiscontinued):
        await handlers.place_order(command, mine, Context())
    assert await mine.store.read_stream(command.order_id) == []
