"""Value types and id derivation shared by the aggregates."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID, uuid5

from domain.errors import InvalidValue

# Fixed namespaces so that a SKU always maps to the same stream ids, on every machine.
PRODUCT_NAMESPACE = UUID("6f1c1e0a-3b0e-5a6c-9a43-2d7c6a1f0b01")
STOCK_NAMESPACE = UUID("6f1c1e0a-3b0e-5a6c-9a43-2d7c6a1f0b02")

SKU_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
CENT = Decimal("0.01")


def normalize_sku(sku: str) -> str:
    """Upper-case and validate a SKU; SKUs are case-insensitive identifiers."""
    normalized = sku.strip().upper()
    if not SKU_PATTERN.match(normalized):
        raise InvalidValue(f"invalid SKU {sku!r}")
    return normalized


# Cached: every command derives one or two ids, and uuid5 hashes with SHA-1 each time.
@functools.lru_cache(maxsize=65536)
def product_id(sku: str) -> UUID:
    """The product stream id: UUIDv5 of the normalised SKU."""
    return uuid5(PRODUCT_NAMESPACE, normalize_sku(sku))


@functools.lru_cache(maxsize=65536)
def stock_item_id(sku: str) -> UUID:
    """The stock-item stream id: UUIDv5 of the normalised SKU in its own namespace."""
    return uuid5(STOCK_NAMESPACE, normalize_sku(sku))


def money(value: Decimal) -> Decimal:
    """Check a positive amount with at most two decimal places; return it with exactly two."""
    if not value.is_finite() or value <= 0:
        raise InvalidValue(f"amount must be positive, got {value}")
    if value != value.quantize(CENT):
        raise InvalidValue(f"amount must have at most 2 decimal places, got {value}")
    return value.quantize(CENT)


def positive(quantity: int, what: str = "quantity") -> int:
    """Check a strictly positive whole quantity."""
    if isinstance(quantity, bool) or quantity <= 0:
        raise InvalidValue(f"{what} must be a positive integer, got {quantity}")
    return quantity


@dataclass(frozen=True)
class OrderLine:
    """One line of an order, priced when the order was placed."""

    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        """Quantity times unit price."""
        return self.unit_price * self.quantity
