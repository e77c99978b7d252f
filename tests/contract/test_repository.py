"""Load, decide, append over every store: retries on lost races, If-Match, created vs updated."""

from __future__ import annotations

import asyncio

import pytest

from domain.catalog import Product
from domain.values import product_id
from eventstore.base import Completion, EventStore
from eventstore.records import AppendResult, StreamAppend, WrongExpectedVersion
from eventstore.repository import ConcurrencyConflict, Context, PreconditionFailed, Repository
from eventstore.serialization import EventCodec, SerializationError
from tests.contract.aggregates import CountingStore, new_sku, register, renamed
from tests.contract.conftest import OpenStore


@pytest.fixture
def repository(open_store: OpenStore) -> Repository:
    """A repository over each store."""
    return Repository(open_store())


async def test_create_then_update_and_reload(repository: Repository) -> None:
    sku = new_sku()
    created = await repository.execute(Product, product_id(sku), register(sku))
    updated = await repository.execute(Product, product_id(sku), renamed("Cup"))
    assert (created.created, created.version, updated.created, updated.version) == (
        True,
        1,
        False,
        2,
    )
    assert created.position is not None and updated.position is not None
    assert created.position < updated.position
    loaded = await repository.get(Product, product_id(sku))
    assert (
        loaded is not None
        and loaded.aggregate.name == "Cup"
        and loaded.position == updated.position
    )


async def test_concurrent_updates_are_retried_and_all_land(repository: Repository) -> None:
    sku = new_sku()
    await repository.execute(Product, product_id(sku), register(sku))
    outcomes = await asyncio.gather(
        *(repository.execute(Product, product_id(sku), renamed(f"name {i}")) for i in range(8))
    )
    assert sorted(o.version for o in outcomes) == list(range(2, 10))
    events = await repository.store.read_stream(product_id(sku))
    assert len(events) == 9


async def test_each_re_run_after_a_lost_race_is_reported(open_store: OpenStore) -> None:
    sku = new_sku()
    retried: list[str] = []
    racing, other = Repository(open_store(), on_retry=retried.append), Repository(open_store())
    await racing.execute(Product, product_id(sku), register(sku))
    await racing.execute(Product, product_id(sku), renamed("first"))  # cached at version 2
    assert retried == []
    await other.execute(Product, product_id(sku), renamed("elsewhere"))  # version 3
    # Decided on the cached version 2, refused by the append, re-run on the stored stream.
    outcome = await racing.execute(Product, product_id(sku), renamed("again"))
    assert outcome.version == 4 and retried == ["Product"]
    outcomes = await asyncio.gather(
        *(racing.execute(Product, product_id(sku), renamed(f"name {i}")) for i in range(8))
    )
    assert sorted(o.version for o in outcomes) == list(range(5, 13))
    assert len(retried) > 1 and set(retried) == {"Product"}


class Overtaken(CountingStore):
    """Another store, where a rival writer appends to the stream just before each append."""

    def __init__(self, inner: EventStore, rival: Repository) -> None:
        super().__init__(inner)
        self.rival, self.appends = rival, 0

    async def append(
        self, *streams: StreamAppend, completion: Completion | None = None
    ) -> list[AppendResult]:
        """Let the rival win, then append."""
        self.appends += 1
        await self.rival.execute(Product, streams[0].stream_id, renamed("rival"))
        return await super().append(*streams, completion=completion)


async def test_a_command_that_keeps_losing_gives_up_after_its_retries(
    open_store: OpenStore,
) -> None:
    sku, retried = new_sku(), list[str]()
    rival = Repository(open_store())
    await rival.execute(Product, product_id(sku), register(sku))
    store = Overtaken(open_store(), rival)
    losing = Repository(store, retries=2, on_retry=retried.append)
    with pytest.raises(ConcurrencyConflict) as raised:
        await losing.execute(Product, product_id(sku), renamed("never"))
    assert store.appends == 3 and retried == ["Product", "Product"]
    assert isinstance(raised.value.__cause__, WrongExpectedVersion)
    events = await rival.store.read_stream(product_id(sku))
    assert len(events) == 4 and events[-1].data["name"] == "rival"  # the rival's three, no more


async def test_if_match_mismatch_is_a_precondition_failure(repository: Repository) -> None:
    sku = new_sku()
    await repository.execute(Product, product_id(sku), register(sku))
    with pytest.raises(PreconditionFailed):
        await repository.execute(
            Product, product_id(sku), renamed("x"), Context(expected_version=5)
        )
    outcome = await repository.execute(
        Product, product_id(sku), renamed("y"), Context(expected_version=1)
    )
    assert outcome.version == 2


async def test_old_schema_versions_are_upcast_on_read(repository: Repository) -> None:
    sku = new_sku()
    await repository.execute(Product, product_id(sku), register(sku))
    [stored] = await repository.store.read_stream(product_id(sku))
    old = type(stored)(**{**vars(stored), "schema_version": 0, "data": {"title": "Mug", "sku": sku,
        "price": "3.00", "category": "kitchen"}})  # fmt: skip

    def v0_to_v1(data: dict[str, object]) -> dict[str, object]:
        return {**data, "name": data.pop("title"), "description": ""}

    assert EventCodec({("ProductRegistered", 0): v0_to_v1}).decode(old).name == "Mug"  # type: ignore[attr-defined]
    with pytest.raises(SerializationError):
        EventCodec().decode(old)
    with pytest.raises(SerializationError):
        EventCodec().decode(type(stored)(**{**vars(stored), "schema_version": 9}))
