"""Commands: what a client asks the domain to do (imperative names, plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID, uuid4


@dataclass(frozen=True)
class RegisterProduct:
    """Add a product to the catalog under a new SKU."""

    sku: str
    name: str
    price: Decimal
    category: str
    description: str = ""
    unit: str = "each"


@dataclass(frozen=True)
class RenameProduct:
    """Give a product a new name."""

    product_id: UUID
    name: str


@dataclass(frozen=True)
class RepriceProduct:
    """Set a product's unit price."""

    product_id: UUID
    price: Decimal


@dataclass(frozen=True)
class DiscontinueProduct:
    """Withdraw a product from sale."""

    product_id: UUID
    reason: str = ""


@dataclass(frozen=True)
class ReceiveStock:
    """Record goods received for a SKU."""

    sku: str
    quantity: int
    reference: str = ""


@dataclass(frozen=True)
class AdjustStock:
    """Correct a SKU's on-hand count."""

    sku: str
    delta: int
    reason: str


@dataclass(frozen=True)
class RequestedLine:
    """A SKU and how many of it, as the customer asked."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class PlaceOrder:
    """Place an order for some SKUs; prices are taken from the catalog."""

    customer_id: UUID
    lines: tuple[RequestedLine, ...]
    order_id: UUID = field(default_factory=uuid4)


@dataclass(frozen=True)
class CancelOrder:
    """Call off an order that is pending or confirmed."""

    order_id: UUID
    reason: str


@dataclass(frozen=True)
class ShipOrder:
    """Ship a confirmed order."""

    order_id: UUID
