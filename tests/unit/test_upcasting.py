"""Upcasters: a complete chain for every event type, pure, and cheap for current events."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from domain.registry import EVENT_TYPES, UPCASTERS
from eventstore.positions import Position
from eventstore.records import StoredEvent
from eventstore.serialization import UPCASTING, EventCodec


def stored(type_: str, schema_version: int, data: dict[str, object]) -> StoredEvent:
    """A stored event as a read would return it before upcasting."""
    return StoredEvent(
        Position(1, 1), uuid4(), uuid4(), "Product", 1, type_, schema_version, data, {},
        datetime.now(UTC),
    )  # fmt: skip


def test_every_old_schema_version_has_an_upcaster() -> None:
    for name, (_, current) in EVENT_TYPES.items():
        for version in range(1, current):
            assert (name, version) in UPCASTERS, (name, version)


def test_a_v1_product_registration_is_sold_each_and_the_stored_data_is_untouched() -> None:
    data = {"sku": "OLD-1", "name": "Mug", "description": "", "price": "9.50", "category": "k"}
    [event] = UPCASTING.events([stored("ProductRegistered", 1, data)])
    assert (event.schema_version, event.data["unit"]) == (2, "each")
    assert "unit" not in data
    assert EventCodec().decode(event).unit == "each"  # type: ignore[attr-defined]


def test_an_event_at_its_current_version_is_returned_as_is() -> None:
    current = stored("ProductRenamed", 1, {"name": "x"})
    assert UPCASTING.events([current])[0] is current
