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

from domain.registry import EVENT_TYPES, STREAM_TYPES, EventClass, type_name
from eventstore.records import NewEvent, StoredEvent

# Fields every event carries that the store keeps in columns, not in `data`.
ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


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


class EventCodec:
    """Encodes domain events for the store and decodes stored events, upcasting old versions."""

    def __init__(self, upcasters: Mapping[tuple[str, int], Upcaster] | None = None) -> None:
        # (type name, schema version N) -> function turning data of version N into N + 1.
        self._upcasters = dict(upcasters or {})

    def encode(self, event: CanMutateAggregate[Any]) -> NewEvent:
        """A domain event as a NewEvent with readable JSON data."""
        name = type_name(event)
        data = {k: to_jsonable(getattr(event, k)) for k in _payload_hints(type(event))}
        return NewEvent(
            type=name, data=data, recorded_at=event.timestamp, schema_version=EVENT_TYPES[name][1]
        )

    def upcast(self, type_: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Bring `data` stored at `schema_version` up to the current schema of `type_`."""
        current = EVENT_TYPES[type_][1]
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

    def decode(self, stored: StoredEvent) -> CanMutateAggregate[Any]:
        """Rebuild the domain event of a stored event."""
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
