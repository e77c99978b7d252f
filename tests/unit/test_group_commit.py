"""Group commit's scheduling: nothing waits needlessly, no stream twice in one batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from eventstore.batching import GroupCommit, Item
from eventstore.positions import Position
from eventstore.records import NewEvent, StreamAppend


def item(stream_id: UUID | None = None, checked: UUID | None = None) -> Item:
    """One event on a stream, and optionally a check of another stream."""
    event = NewEvent("ThingHappened", {}, datetime.now(UTC))
    appends = [StreamAppend(stream_id or uuid4(), "Thing", 0, [event])]
    if checked is not None:
        appends.append(StreamAppend(checked, "Thing", 3, []))
    return tuple(appends)


class Writer:
    """Records what went out alone and together; `gate` holds the ones going out alone."""

    def __init__(self, fail_together: Exception | None = None) -> None:
        self.alone: list[Item] = []
        self.refuse: object = None  # the tag whose append a batch answers with an error
        self.together: list[list[Item]] = []
        self.gate = asyncio.Event()
        self.fail_together = fail_together

    async def run_one(self, item: Item, tag: object) -> list[Position]:
        self.alone.append(item)
        await self.gate.wait()
        return [Position(1, len(self.alone))]

    async def run_many(
        self, jobs: Sequence[tuple[Item, object]]
    ) -> list[list[Position] | Exception]:
        items = [item for item, _ in jobs]
        self.together.append(items)
        await asyncio.sleep(0)
        if self.fail_together is not None:
            raise self.fail_together
        return [
            ValueError(tag) if tag is not None and tag == self.refuse else [Position(2, n)]
            for n, (_, tag) in enumerate(jobs)
        ]


def group(writer: Writer, alone_on: type[Exception] = KeyError) -> GroupCommit[object]:
    return GroupCommit(writer.run_one, writer.run_many, lambda e: isinstance(e, alone_on))


async def test_below_the_limit_an_append_goes_out_alone_at_once() -> None:
    writer = Writer()
    writer.gate.set()
    commit = group(writer)
    for _ in range(3):
        assert await commit.append(item(), None) == [Position(1, len(writer.alone))]
    assert len(writer.alone) == 3 and writer.together == []


async def test_queued_appends_go_out_together_but_never_two_on_one_stream() -> None:
    writer, shared, product = Writer(), uuid4(), uuid4()
    commit = group(writer)
    first, second = item(), item()
    queued = [item(shared), item(), item(shared), item(checked=product), item(product)]
    tasks = [asyncio.create_task(commit.append(i, None)) for i in [first, second, *queued]]
    await asyncio.sleep(0.01)
    assert writer.alone == [first, second] and writer.together == []
    writer.gate.set()
    answers = await asyncio.gather(*tasks)
    assert all(answers)
    # The second append on `shared`, and the write to a stream another one checks, wait.
    assert writer.together[0] == [queued[0], queued[1], queued[3]]
    assert [queued[2], queued[4]] in writer.together or (
        [queued[2]] in writer.together and [queued[4]] in writer.together
    )


async def test_an_append_whose_caller_gave_up_in_the_queue_never_goes_out() -> None:
    writer = Writer()
    commit = group(writer)
    busy = [asyncio.create_task(commit.append(item(), None)) for _ in range(2)]
    dropped, kept = item(), item()
    waiting = [asyncio.create_task(commit.append(i, None)) for i in (dropped, kept)]
    await asyncio.sleep(0.01)
    waiting[0].cancel()
    writer.gate.set()
    await asyncio.gather(*busy, waiting[1])
    sent = [i for batch in writer.together for i in batch] + writer.alone
    assert kept in sent and dropped not in sent


@pytest.mark.parametrize("alone", [True, False])
async def test_a_failed_batch_is_retried_alone_or_fails_every_append(alone: bool) -> None:
    writer = Writer(fail_together=KeyError("unique key") if alone else OSError("lost"))
    commit = group(writer)
    busy = [asyncio.create_task(commit.append(item(), None)) for _ in range(2)]
    queued = [item() for _ in range(3)]
    waiting = [asyncio.create_task(commit.append(i, None)) for i in queued]
    await asyncio.sleep(0.01)
    writer.gate.set()
    await asyncio.gather(*busy)
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    if alone:
        assert all(isinstance(o, list) for o in outcomes)
        assert all(i in writer.alone for i in queued)
    else:
        assert all(isinstance(o, OSError) for o in outcomes)
        assert not any(i in writer.alone for i in queued)


async def test_a_batch_may_refuse_one_append_and_commit_the_others() -> None:
    writer = Writer()
    writer.refuse = "taken over"
    commit = group(writer)
    busy = [asyncio.create_task(commit.append(item(), None)) for _ in range(2)]
    tags = ["a", "taken over", "b"]
    waiting = [asyncio.create_task(commit.append(item(), tag)) for tag in tags]
    await asyncio.sleep(0.01)
    writer.gate.set()
    await asyncio.gather(*busy)
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert len(writer.together) == 1 and len(writer.together[0]) == 3
    assert outcomes[0] == [Position(2, 0)] and outcomes[2] == [Position(2, 2)]
    assert isinstance(outcomes[1], ValueError)


async def test_a_batch_takes_tags_that_are_the_same_to_distinct_once() -> None:
    writer = Writer()
    commit = GroupCommit(writer.run_one, writer.run_many, lambda e: False, distinct=str.lower)
    busy = [asyncio.create_task(commit.append(item(), None)) for _ in range(2)]
    queued = [(item(), "k1"), (item(), None), (item(), "K1"), (item(), "k2"), (item(), None)]
    waiting = [asyncio.create_task(commit.append(i, tag)) for i, tag in queued]
    await asyncio.sleep(0.01)
    writer.gate.set()
    await asyncio.gather(*busy, *waiting)
    first = [queued[0][0], queued[1][0], queued[3][0], queued[4][0]]
    assert writer.together[0] == first  # "K1" is "k1" again: it waits for the next batch
    assert queued[2][0] in writer.alone or queued[2][0] in writer.together[1]
