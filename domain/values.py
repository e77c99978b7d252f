"""Value types and id derivation shared by the aggregates."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args
from uuid import UUID, uuid5

from domain.errors import InvalidValue, LimitExceeded

# Fixed namespaces so that a SKU always maps to the same stream ids, on every machine.
PRODUCT_NAMESPACE = UUID("6f1c1e0a-3b0e-5a6c-9a43-2d7c6a1f0b01")
STOCK_NAMESPACE = UUID("6f1c1e0a-3b0e-5a6c-9a43-2d7c6a1f0b02")

SKU_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
CENT = Decimal("0.01")

# Domain limits. Whatever a command may store, the read models keep as integers (cents, units)
# in BSON's int64 (max 9.2e18), so each limit is chosen for the sums the projections make:
# - a unit price is at most 1e8 cents, an order's total at most 1e10 cents: a day's revenue
#   (a sum of order totals) overflows only after more than 9e8 orders at the largest total;
# - stock on hand is at most 1e12 units, and reserved never exceeds on hand;
# - a line's quantity is at most 1e6, so a day's units per SKU need 9e12 lines to overflow.
# A receipt or adjustment may move up to the on-hand limit at once: the limit is on the stock,
# and a smaller per-movement limit would add no safety.
MAX_PRICE = Decimal("1000000.00")
MAX_QUANTITY = 1_000_000
MAX_LINES = 100
MAX_ORDER_TOTAL = Decimal("100000000.00")
MAX_ON_HAND = 1_000_000_000_000

# Units of measure a product is sold by (ProductRegistered v2; older products are "each").
Unit = Literal["each", "pack", "kg", "g", "l", "ml", "m"]
UNITS: tuple[str, ...] = get_args(Unit)
DEFAULT_UNIT = "each"


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


def unit_price(value: Decimal) -> Decimal:
    """Check a unit price: money of at most MAX_PRICE."""
    amount = money(value)
    if amount > MAX_PRICE:
        raise InvalidValue(f"price must be at most {MAX_PRICE}, got {amount}")
    return amount


def positive(quantity: int, what: str = "quantity", limit: int = MAX_QUANTITY) -> int:
    """Check a whole quantity from 1 to `limit`."""
    if isinstance(quantity, bool) or quantity <= 0:
        raise InvalidValue(f"{what} must be a positive integer, got {quantity}")
    if quantity > limit:
        raise InvalidValue(f"{what} must be at most {limit}, got {quantity}")
    return quantity


def within(total: Decimal | int, limit: Decimal | int, what: str) -> None:
    """Refuse a total that the command would take past its domain limit (a broken rule)."""
    if total > limit:
        raise LimitExceeded(f"{what} would be {total}, over the limit of {limit}")


def unit_of_measure(unit: str) -> str:
    """Check a unit of measure."""
    if unit not in UNITS:
        raise InvalidValue(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    return unit


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
