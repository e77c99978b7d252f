"""Domain events <-> readable JSON, with upcasting of old schema versions on read."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import get_topic

from domain.registry import EVENT_TYPES, STREAM_TYPES, UPCASTERS, EventClass, Upcaster, type_name
from eventstore.records import NewEvent, StoredEvent

# Fields every event carries that the store keeps in columns, not in `data`.
ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)


class SerializationError(Exception):
    """A stored event cannot be turned back into a domain event."""


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for a domain value: decimals and ids as strings, dataclasses as objects."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(hint: Any, value: Any) -> Any:
    """Rebuild a value of type `hint` from its JSON form."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return from_jsonable(next(a for a in args if a is not type(None)), value)
    if origin in (tuple, list):
        item_hint = args[0] if args else Any
        return origin(from_jsonable(item_hint, item) for item in value)
    if hint in (Decimal, UUID):
        return hint(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        return hint(**{k: from_jsonable(hints[k], v) for k, v in value.items()})
    return value


Converter = Callable[[Any], Any]


@functools.cache
def converter(hint: Any) -> Converter | None:
    """A function rebuilding a value of type `hint` from JSON, or None if JSON already is one.

    Worked out once per type: decoding is on the catch-up's hot path, and re-inspecting the
    type hints of every field of every event cost more than the JSON parsing itself.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = converter(next(a for a in args if a is not type(None)))
        if inner is None:
            return None
        return lambda value: None if value is None else inner(value)
    if origin in (tuple, list):
        item = converter(args[0]) if args else None
        if item is None:
            return origin  # type: ignore[no-any-return]
        return lambda value: origin(item(v) for v in value)
    if hint in (Decimal, UUID):
        return hint  # type: ignore[no-any-return]
    if hint is datetime:
        return datetime.fromisoformat
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return functools.partial(from_jsonable, hint)
    return None


_HINTS: dict[EventClass, dict[str, Any]] = {}
_CONVERTERS: dict[EventClass, tuple[tuple[str, Converter], ...]] = {}


def _payload_hints(event_cls: EventClass) -> dict[str, Any]:
    """Name -> type of the fields an event keeps in `data` (computed once per class)."""
    if event_cls not in _HINTS:
        hints = typing.get_type_hints(event_cls)
        fields = dataclasses.fields(cast(Any, event_cls))
        _HINTS[event_cls] = {f.name: hints[f.name] for f in fields if f.name not in ENVELOPE_FIELDS}
    return _HINTS[event_cls]


def _converters(event_cls: EventClass) -> tuple[tuple[str, Converter], ...]:
    """The payload fields of an event class that need converting, with their converters."""
    found = _CONVERTERS.get(event_cls)
    if found is None:
        pairs = ((name, converter(hint)) for name, hint in _payload_hints(event_cls).items())
        found = _CONVERTERS[event_cls] = tuple((n, c) for n, c in pairs if c is not None)
    return found


@functools.cache
def _topic(stream_type: str) -> str:
    return get_topic(STREAM_TYPES[stream_type])


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to decode one event type, worked out once: the catch-up decodes every event."""

    cls: Any
    version: int
    fields: tuple[str, ...]
    converters: tuple[tuple[str, Converter], ...]
    creates: bool


_PLANS: dict[str, _Plan] = {}


def _plan(type_: str) -> _Plan:
    """The decoding plan of a stored type name (SerializationError for an unknown one)."""
    if type_ not in EVENT_TYPES:
        raise SerializationError(f"unknown event type {type_!r}")
    event_cls, version = EVENT_TYPES[type_]
    fields = tuple(_payload_hints(event_cls))
    creates = issubclass(event_cls, CanInitAggregate)
    plan = _PLANS[type_] = _Plan(event_cls, version, fields, _converters(event_cls), creates)
    return plan


class Upcasting:
    """Brings stored events up to their type's current schema version: every read path's step.

    The event store applies it to what read_stream and read_all return, so projections, the
    fulfilment process, replay, rebuild and the audit see one shape per type, as the aggregates
    do. An event at its current version costs one dict lookup.
    """

    def __init__(self, upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS) -> None:
        self._upcasters = dict(upcasters)
        self.current = {name: version for name, (_, version) in EVENT_TYPES.items()}

    def data(self, type_: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """`data` stored at `schema_version`, brought up to the current schema of `type_`."""
        current = self.current[type_]
        if schema_version > current:
            raise SerializationError(
                f"{type_} v{schema_version} is newer than this code (v{current})"
            )
        for version in range(schema_version, current):
            upcaster = self._upcasters.get((type_, version))
            if upcaster is None:
                raise SerializationError(f"no upcaster for {type_} v{version}")
            data = upcaster(dict(data))
        return data

    def events(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """`events` (in place) with every one at its type's current schema version.

        One the code cannot upcast (an unknown type, a version newer than the code, a missing
        upcaster) is left as stored, saying its own version: the reader that needs its shape
        (decode, a projector) refuses that one event, instead of every read of the store failing.
        """
        current = self.current
        for index, event in enumerate(events):
            if current.get(event.type, event.schema_version) != event.schema_version:
                events[index] = self._upcast(event)
        return events

    def _upcast(self, event: StoredEvent) -> StoredEvent:
        try:
            data = self.data(event.type, event.schema_version, event.data)
        except SerializationError:
            return event
        return dataclasses.replace(event, schema_version=self.current[event.type], data=data)


UPCASTING = Upcasting()


class EventCodec:
    """Encodes domain events for the store and decodes stored events, upcasting old versions."""

    def __init__(self, upcasters: Mapping[tuple[str, int], Upcaster] | None = None) -> None:
        # Extra upcasters (tests, a migration) on top of the domain's own.
        self._upcasting = Upcasting({**UPCASTERS, **upcasters}) if upcasters else UPCASTING

    def encode(self, event: CanMutateAggregate[Any]) -> NewEvent:
        """A domain event as a NewEvent with readable JSON data."""
        name = type_name(event)
        data = {k: to_jsonable(getattr(event, k)) for k in _payload_hints(type(event))}
        # An event that may happen once only names its own id; the store's unique index on
        # event ids then refuses a second one (StockItem's reservation decisions).
        unique_id = getattr(event, "unique_id", None)
        return NewEvent(
            type=name,
            data=data,
            recorded_at=event.timestamp,
            schema_version=EVENT_TYPES[name][1],
            event_id=unique_id() if unique_id is not None else None,
        )

    def upcast(self, type_: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Bring `data` stored at `schema_version` up to the current schema of `type_`."""
        return self._upcasting.data(type_, schema_version, data)

    def decode(self, stored: StoredEvent) -> CanMutateAggregate[Any]:
        """Rebuild the domain event of a stored event (the store's reads have upcast it already;
        one built elsewhere, or one the store could not upcast, is upcast or refused here)."""
        plan = _PLANS.get(stored.type) or _plan(stored.type)
        data = stored.data
        if stored.schema_version != plan.version:
            data = self.upcast(stored.type, stored.schema_version, data)
        kwargs = {k: data[k] for k in plan.fields}
        for name, convert in plan.converters:
            kwargs[name] = convert(kwargs[name])
        if plan.creates:
            kwargs["originator_topic"] = _topic(stored.stream_type)
        event: CanMutateAggregate[Any] = plan.cls(
            originator_id=stored.stream_id,
            originator_version=stored.version,
            timestamp=stored.recorded_at,
            **kwargs,
        )
        return event
