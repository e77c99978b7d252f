"""Snapshots over every store: taken at the interval, used on cold loads, ignored when stale,
and a cache: dropping them changes no answer."""

from __future__ import annotations

import asyncio
import dataclasses
from uuid import UUID, uuid4

from domain.errors import DomainError
from domain.inventory import StockItem
from domain.values import stock_item_id
from eventstore.base import EventStore, SnapshotRecord
from eventstore.memory import InMemoryEventStore
from eventstore.positions import Position
from eventstore.records import StoreUnavailable
from eventstore.repository import Repository
from eventstore.snapshots import SnapshotWriter, restore, take
from tests.contract.aggregates import new_sku
from tests.contract.conftest import OpenStore

INTERVAL = 10


def snapshotting(store: EventStore, interval: int = INTERVAL) -> Repository:
    """A repository taking snapshots every `interval` events."""
    return Repository(store, snapshots=SnapshotWriter(store, interval))


async def stock_history(repo: Repository, sku: str, commands: int) -> UUID:
    """Open a SKU's stock and run `commands` more commands on it (reserve, release, receive)."""
    stream = stock_item_id(sku)

    def open_it(item: StockItem | None) -> StockItem:
        item = item or StockItem.open(sku)
        item.receive(100, "PO-0")
        return item

    await repo.execute(StockItem, stream, open_it)
    for n in range(commands):
        order = uuid4()

        def step(item: StockItem | None, n: int = n, order: UUID = order) -> StockItem | None:
            assert item is not None
            if n % 3 == 2:
                item.receive(1, f"PO-{n}")
            else:
                item.reserve(order, 1 + n % 5)
                if n % 3 == 1:
                    item.release(order)
            return item

        await repo.execute(StockItem, stream, step)
    return stream


async def drained(repo: Repository) -> None:
    """Wait until the snapshots the repository offered are written."""
    assert repo.snapshots is not None
    await repo.snapshots.drain()


def state(repo_loaded: object) -> dict[str, object]:
    """An aggregate's state, without the list of events not yet saved."""
    return {k: v for k, v in vars(repo_loaded).items() if k != "_pending_events"}


async def test_a_snapshot_is_taken_each_time_the_interval_is_crossed(
    open_store: OpenStore,
) -> None:
    store = open_store()
    repo = snapshotting(store)
    stream = await stock_history(repo, new_sku(), 24)  # 2 + 24 + ... events: past 20, not 30
    await drained(repo)
    record, tail = await store.load_latest(stream)
    version = (await repo.get(StockItem, stream)).aggregate.version  # type: ignore[union-attr]
    crossed = version // INTERVAL * INTERVAL  # the last multiple passed; an append adds <= 2
    assert record is not None and crossed <= record.version < crossed + 2
    assert [e.version for e in tail] == list(range(record.version + 1, version + 1))
    assert record.stream_type == "StockItem" and record.state_version == StockItem.class_version
    assert repo.snapshots is not None and repo.snapshots.outcomes["failed"] == 0


async def test_a_cold_load_starts_from_the_snapshot(open_store: OpenStore) -> None:
    store = open_store()
    stream = await stock_history(snapshotting(store), new_sku(), 25)
    cold = snapshotting(store)
    loaded = await cold.get(StockItem, stream)
    assert loaded is not None
    # Doctor the stored snapshot: a cold load that starts from it shows the doctored count.
    record, _ = await store.load_latest(stream)
    assert record is not None
    doctored = dataclasses.replace(record, state={**record.state, "on_hand": 999_999})
    await store.drop_snapshots(stream)
    await store.save_snapshot(doctored)
    from_doctored = await snapshotting(store).get(StockItem, stream)
    assert from_doctored is not None
    assert from_doctored.aggregate.on_hand != loaded.aggregate.on_hand
    assert from_doctored.aggregate.version == loaded.aggregate.version
    assert from_doctored.position == loaded.position


async def test_a_snapshot_of_another_state_version_is_ignored_and_replaced(
    open_store: OpenStore,
) -> None:
    store = open_store()
    stream = await stock_history(Repository(store), new_sku(), 30)  # no snapshots yet
    truth = await Repository(store).get(StockItem, stream)
    assert truth is not None
    stale = dataclasses.replace(
        take(truth.aggregate, truth.position),
        state_version=StockItem.class_version - 1,
        state={"on_hand": 1, "settled": [], "rejected": []},  # an older shape
    )
    await store.save_snapshot(stale)
    repo = snapshotting(store)
    loaded = await repo.get(StockItem, stream)
    assert loaded is not None and state(loaded.aggregate) == state(truth.aggregate)
    await drained(repo)  # the whole stream was folded: a snapshot of this code replaces it
    record, tail = await store.load_latest(stream)
    assert record is not None and record.state_version == StockItem.class_version
    assert record.version == truth.aggregate.version and tail == []


def test_a_snapshot_of_another_class_is_not_restored() -> None:
    item = StockItem.open(new_sku())
    item.receive(3)
    item.collect_events()
    record = take(item, Position(1, 1))
    assert restore(StockItem, record) is not None
    assert restore(StockItem, dataclasses.replace(record, stream_type="Product")) is None
    assert restore(StockItem, dataclasses.replace(record, stream_type="Gone")) is None


async def test_dropping_snapshots_changes_no_answer(open_store: OpenStore) -> None:
    store = open_store()
    repo = snapshotting(store)
    streams = [await stock_history(repo, new_sku(), n) for n in (5, 23, 41)]
    await drained(repo)

    async def answers() -> list[object]:
        fresh = snapshotting(store, interval=10_000)  # reads snapshots, takes none meanwhile
        found = []
        for stream in streams:
            loaded = await fresh.get(StockItem, stream)
            assert loaded is not None
            found.append((state(loaded.aggregate), loaded.position, await _probe(fresh, stream)))
        return found

    with_snapshots = await answers()
    assert await store.drop_snapshots(streams[2]) == 1
    one_dropped = await answers()
    assert await store.drop_snapshots() >= 1
    assert [await store.load_latest(s) for s in streams] == [
        (None, await store.read_stream(s)) for s in streams
    ]
    none = await answers()
    plain = [
        (state(loaded.aggregate), loaded.position, await _probe(Repository(store), s))
        for s in streams
        if (loaded := await Repository(store).get(StockItem, s)) is not None
    ]
    assert with_snapshots == one_dropped == none == plain


async def _probe(repo: Repository, stream: UUID) -> str:
    """A decision on the stored state that appends nothing: adjusting below what is reserved."""
    loaded = await repo.get(StockItem, stream)
    assert loaded is not None
    try:
        loaded.aggregate.adjust(-(loaded.aggregate.on_hand + 1), "probe")
    except DomainError as exc:
        return str(exc)
    return "accepted"


class GatedStore(InMemoryEventStore):
    """Snapshot writes wait at a gate, or fail."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.gate, self.fail = asyncio.Event(), fail

    async def save_snapshot(self, record: SnapshotRecord) -> None:
        """Wait for the gate, then fail or save."""
        await self.gate.wait()
        if self.fail:
            raise StoreUnavailable("snapshots are down")
        await super().save_snapshot(record)


async def test_the_command_crossing_the_interval_does_not_wait_for_its_snapshot() -> None:
    store = GatedStore()
    repo = snapshotting(store)
    stream = await asyncio.wait_for(stock_history(repo, new_sku(), 12), timeout=5)
    assert store.snapshots == {}  # every command returned while its snapshot was held up
    store.gate.set()
    await drained(repo)
    assert list(store.snapshots) == [stream]


async def test_a_failed_snapshot_write_is_counted_and_fails_no_command() -> None:
    store = GatedStore(fail=True)
    store.gate.set()
    repo = snapshotting(store, interval=3)
    stream = await stock_history(repo, new_sku(), 12)
    await drained(repo)
    assert repo.snapshots is not None and repo.snapshots.outcomes["failed"] >= 3
    assert store.snapshots == {}
    loaded = await snapshotting(store).get(StockItem, stream)
    assert loaded is not None and loaded.aggregate.version == len(await store.read_stream(stream))
