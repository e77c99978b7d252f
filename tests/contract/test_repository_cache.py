"""The repository's cache of aggregates it saved, over every store: one round trip when it is
current, and never a wrong answer when another process wrote in between."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from domain.catalog import Product
from domain.errors import AlreadyExists, DomainError
from domain.orders import Order
from domain.values import OrderLine, product_id
from eventstore.repository import Context, PreconditionFailed, Repository
from tests.contract.aggregates import (
    CountingStore,
    discontinue,
    new_sku,
    register,
    register_once,
    reprice,
)
from tests.contract.conftest import OpenStore

Processes = tuple[Repository, Repository, CountingStore]


@pytest.fixture
def two_processes(open_store: OpenStore) -> Processes:
    """Two repositories on one store, as two API processes would be; the first one's reads
    are counted."""
    store = CountingStore(open_store())
    return Repository(store), Repository(open_store()), store


async def test_a_command_on_a_stream_it_wrote_last_reads_nothing(two_processes: Processes) -> None:
    """After its own write, the next command is one append: no stream read."""
    mine, _, store = two_processes
    sku = new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    before = store.reads
    outcome = await mine.execute(Product, product_id(sku), reprice("4.00"))
    assert (outcome.version, store.reads - before) == (2, 0)
    loaded = await mine.get(Product, product_id(sku))
    assert loaded is not None and loaded.aggregate.price == Decimal("4.00")


async def test_a_write_by_another_process_is_seen_not_overwritten(
    two_processes: Processes,
) -> None:
    """Cache behind the store: the append is refused, the command re-runs on stored state."""
    mine, theirs, _ = two_processes
    sku = new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    await theirs.execute(Product, product_id(sku), reprice("5.00"))
    outcome = await mine.execute(Product, product_id(sku), reprice("6.00"))
    assert outcome.version == 3
    events = await mine.store.read_stream(product_id(sku))
    assert [e.version for e in events] == [1, 2, 3]


async def test_a_cached_refusal_is_re_judged_on_the_stored_state(two_processes: Processes) -> None:
    """The cached order is pending (ship refused); the worker confirmed it: ship must succeed."""
    mine, theirs, _ = two_processes
    order_id = uuid.uuid4()
    line = OrderLine("MUG-001", 1, Decimal("3.00"))
    await mine.execute(Order, order_id, lambda _: Order.place(uuid.uuid4(), [line], id=order_id))

    def confirm(order: Order | None) -> Order:
        assert order is not None
        order.confirm()
        return order

    def ship(order: Order | None) -> Order:
        assert order is not None
        order.ship()
        return order

    await theirs.execute(Order, order_id, confirm)
    shipped = await mine.execute(Order, order_id, ship)
    assert shipped.version == 3


async def test_a_refusal_is_judged_on_the_stored_state(two_processes: Processes) -> None:
    """A stale cache must not refuse: the other process discontinued, so this must be a 409."""
    mine, theirs, _ = two_processes
    sku = new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    await theirs.execute(Product, product_id(sku), discontinue())
    # On the cached (active) product, a reprice would be accepted; the store says otherwise.
    with pytest.raises(DomainError):
        await mine.execute(Product, product_id(sku), reprice("7.00"))


async def test_if_match_is_judged_on_the_store_not_the_cache(two_processes: Processes) -> None:
    """If-Match naming the stored version succeeds although this process's cache is older."""
    mine, theirs, _ = two_processes
    sku = new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    await theirs.execute(Product, product_id(sku), reprice("5.00"))
    ok = await mine.execute(Product, product_id(sku), reprice("8.00"), Context(expected_version=2))
    assert ok.version == 3
    with pytest.raises(PreconditionFailed):
        await mine.execute(Product, product_id(sku), reprice("9.00"), Context(expected_version=2))


async def test_existence_is_remembered_once_seen(two_processes: Processes) -> None:
    """`exists` reads the stream until the answer is yes, then never again."""
    mine, theirs, store = two_processes
    sku = new_sku()
    assert not await mine.exists(Product, product_id(sku))
    await theirs.execute(Product, product_id(sku), register(sku))
    assert await mine.exists(Product, product_id(sku))
    before = store.reads
    assert await mine.exists(Product, product_id(sku))
    assert store.reads == before


async def test_a_likely_new_stream_is_created_without_a_read(two_processes: Processes) -> None:
    """Creating a stream is one round trip: the append at version 0 is the existence check."""
    mine, _, store = two_processes
    sku = new_sku()
    outcome = await mine.execute(Product, product_id(sku), register_once(sku), likely_new=True)
    assert (outcome.version, outcome.created, store.reads) == (1, True, 0)


async def test_a_likely_new_stream_that_exists_is_refused_on_what_it_holds(
    two_processes: Processes,
) -> None:
    """Another process registered the SKU: the blind append fails, the refusal is the domain's."""
    mine, theirs, store = two_processes
    sku = new_sku()
    await theirs.execute(Product, product_id(sku), register_once(sku), likely_new=True)
    with pytest.raises(AlreadyExists):
        await mine.execute(Product, product_id(sku), register_once(sku), likely_new=True)
    events = await store.read_stream(product_id(sku))
    assert [e.version for e in events] == [1]


async def test_if_match_on_a_likely_new_stream_reads_first(two_processes: Processes) -> None:
    """If-Match names a version: it is judged on the store, never by a blind append."""
    mine, _, store = two_processes
    sku = new_sku()
    with pytest.raises(PreconditionFailed):
        await mine.execute(
            Product,
            product_id(sku),
            register_once(sku),
            Context(expected_version=3),
            likely_new=True,
        )
    assert store.reads == 1 and await store.read_stream(product_id(sku)) == []


async def test_a_read_of_a_cached_stream_fetches_only_what_came_after(
    open_store: OpenStore, two_processes: Processes
) -> None:
    """Another process repriced: the read sees it, fetching from the cached version on."""
    mine, theirs, store = two_processes
    sku = new_sku()
    await mine.execute(Product, product_id(sku), register(sku))
    await theirs.execute(Product, product_id(sku), reprice("5.00"))
    await theirs.execute(Product, product_id(sku), reprice("6.00"))
    loaded = await mine.get(Product, product_id(sku))
    assert loaded is not None
    assert (loaded.aggregate.version, loaded.aggregate.price) == (3, Decimal("6.00"))
    assert store.starts == [1, 2]  # the register's look, then only what came after version 1
    # What was read is cached: the next command on the stream is one append, no read.
    outcome = await mine.execute(Product, product_id(sku), reprice("7.00"))
    assert (outcome.version, store.reads) == (4, 2)
    fresh = await Repository(open_store()).get(Product, product_id(sku))
    assert fresh is not None and fresh.aggregate.price == Decimal("7.00")


async def test_a_read_does_not_hand_out_the_aggregate_a_command_is_changing(
    open_store: OpenStore,
) -> None:
    """A refused command must not leave its half-made change in what readers get."""
    repo = Repository(open_store())
    sku = new_sku()
    await repo.execute(Product, product_id(sku), register(sku))

    def reprice_then_refuse(product: Product | None) -> Product:
        assert product is not None
        product.reprice(Decimal("99.00"))
        raise AlreadyExists("refused after changing it")

    with pytest.raises(AlreadyExists):
        await repo.execute(Product, product_id(sku), reprice_then_refuse)
    loaded = await repo.get(Product, product_id(sku))
    assert loaded is not None and loaded.aggregate.price == Decimal("3.00")
