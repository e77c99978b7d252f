"""Snapshots: an aggregate's state every N events, so a cold load folds a bounded tail.

A snapshot is a cache. It records the aggregate's stream type and state-schema version (the
class's `class_version`); one that no longer matches the code is ignored, the stream is read
from the start, and a new snapshot is taken. Deleting every snapshot changes no answer.

The state is captured and rebuilt by the eventsourcing library's `Snapshot.take` and
`Snapshot.mutate` (the aggregate's `__dict__`, no per-class code). What the library leaves to
its mappers, storing that state, is done here: as JSON with tags for the values JSON lacks
(ids, decimals, times, tuples, sets, maps with non-string keys, the domain's value objects),
so a snapshot is as readable in psql as the events are.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.utils import get_topic, resolve_topic

from domain.registry import STREAM_TYPES, stream_type_of
from eventstore.base import SnapshotRecord, SnapshotStore
from eventstore.positions import Position

log = logging.getLogger(__name__)


class SnapshotUnsupported(TypeError):
    """The aggregate's state holds a value the snapshot encoding does not know."""


def state_version(cls: type[Aggregate]) -> int:
    """The state-schema version of an aggregate class (eventsourcing's `class_version`)."""
    return int(getattr(cls, "class_version", 1))


def take(aggregate: Aggregate, position: Position) -> SnapshotRecord:
    """A snapshot of `aggregate` as it is now (the state at its version, encoded at once)."""
    snapshot = Snapshot.take(aggregate)
    state = dict(snapshot.state)
    state.pop("class_version", None)  # recorded in its own column
    return SnapshotRecord(
        stream_id=aggregate.id,
        stream_type=stream_type_of(type(aggregate)),
        state_version=state_version(type(aggregate)),
        version=aggregate.version,
        position=position,
        state=encode(state),
        taken_at=snapshot.timestamp,
    )


def restore(cls: type[Aggregate], record: SnapshotRecord) -> Aggregate | None:
    """The aggregate the snapshot holds, or None if it was taken of other code (ignore it)."""
    if STREAM_TYPES.get(record.stream_type) is not cls:
        return None
    if record.state_version != state_version(cls):
        return None
    try:
        state = decode(record.state)
        state["class_version"] = record.state_version  # the library upcasts from it: none due
    except (SnapshotUnsupported, ValueError, KeyError) as exc:
        log.warning("snapshot of %s unreadable, ignored: %s", record.stream_id, exc)
        return None
    snapshot = Snapshot(
        originator_id=record.stream_id,
        originator_version=record.version,
        timestamp=record.taken_at,
        topic=get_topic(cls),
        state=state,
    )
    aggregate: Aggregate = snapshot.mutate(None)  # type: ignore[assignment]
    return aggregate


_TAGS = ("$uuid", "$dec", "$time", "$tuple", "$set", "$map", "$value")


def encode(value: Any) -> Any:
    """`value` as JSON, tagging what JSON cannot say by itself."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(item) for item in value]}
    if isinstance(value, set | frozenset):
        return {"$set": [encode(item) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and type(value).__module__.startswith("domain."):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$value": get_topic(type(value)), "fields": fields}
    raise SnapshotUnsupported(f"cannot snapshot a {type(value).__name__}")


def decode(value: Any) -> Any:
    """The value `encode` was given."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = next((t for t in _TAGS if t in value), None)
    if tag is None:
        return {k: decode(v) for k, v in value.items()}
    raw = value[tag]
    if tag == "$uuid":
        return UUID(raw)
    if tag == "$dec":
        return Decimal(raw)
    if tag == "$time":
        return datetime.fromisoformat(raw)
    if tag == "$tuple":
        return tuple(decode(item) for item in raw)
    if tag == "$set":
        return {decode(item) for item in raw}
    if tag == "$map":
        return {decode(k): decode(v) for k, v in raw}
    return _value(raw, value["fields"])


def _value(topic: str, fields: dict[str, Any]) -> Any:
    """A domain value object; only the domain's own classes are ever resolved."""
    if not topic.startswith("domain."):
        raise SnapshotUnsupported(f"{topic} is not a domain value")
    cls = resolve_topic(topic)
    return cls(**{name: decode(v) for name, v in fields.items()})


class SnapshotWriter:
    """Takes snapshots every `interval` events and writes them off the command's path.

    The command that crosses the interval encodes the state (microseconds: states are bounded)
    and returns; a task writes it. At most `max_in_flight` writes run at once; one over that is
    skipped, as a failed one is (logged): the next crossing takes another, and until then a cold
    load just folds a longer tail.
    """

    def __init__(
        self,
        store: SnapshotStore,
        interval: int,
        max_in_flight: int = 4,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        # Few writes at once: each holds a pooled connection the commands also need.
        self.store, self.interval, self.max_in_flight = store, interval, max_in_flight
        self.on_outcome = on_outcome  # "written", "skipped" or "failed" (a metric)
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.on_outcome(outcome)

    def crossed(self, before: int, after: int) -> bool:
        """Whether going from version `before` to `after` passes a multiple of the interval."""
        return self.interval > 0 and before // self.interval != after // self.interval

    def offer(self, aggregate: Aggregate, position: Position) -> None:
        """Snapshot `aggregate` now and write it in the background (or skip, see the class)."""
        if len(self._tasks) >= self.max_in_flight:
            self._count("skipped")
            return
        try:
            record = take(aggregate, position)
        except SnapshotUnsupported as exc:
            self._count("skipped")
            log.warning("%s cannot be snapshotted: %s", type(aggregate).__name__, exc)
            return
        task = asyncio.get_running_loop().create_task(self._write(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, record: SnapshotRecord) -> None:
        try:
            await self.store.save_snapshot(record)
        except Exception as exc:  # a cache write: the events are safe, the next crossing retries
            self._count("failed")
            log.warning("snapshot of %s v%d not written: %r", record.stream_id, record.version, exc)
        else:
            self._count("written")

    async def drain(self) -> None:
        """Wait for the writes in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def snapshot_writer(
    store: SnapshotStore, interval: int, on_outcome: Callable[[str], None] = lambda outcome: None
) -> SnapshotWriter | None:
    """A writer taking snapshots every `interval` events, or None when `interval` is 0 (off)."""
    return SnapshotWriter(store, interval, on_outcome=on_outcome) if interval > 0 else None
