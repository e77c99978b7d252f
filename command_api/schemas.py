"""HTTP request and response bodies of the command API (validation happens here)."""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from core.ids import uuid7
from domain import commands
from domain.values import MAX_LINES, MAX_ON_HAND, MAX_PRICE, MAX_QUANTITY, Unit

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _printable(value: str, allowed: str = "") -> str:
    # PostgreSQL's jsonb refuses NUL and lone surrogates; control characters are never data here.
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"control or surrogate character U+{ord(char):04X} not allowed")
    return value


def _multiline(value: str) -> str:
    return _printable(value, allowed="\n\r\t")


def _strict_config(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN, max_length=64)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_printable),
]
Note = Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)]
Description = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_multiline)]
# The domain's limits (domain/values.py), here too so that OpenAPI shows them and one past a
# field's limit is a 422 before any work. An order's total and stock on hand depend on stored
# state, so only the domain checks those (409).
Price = Annotated[
    Decimal,
    Field(
        gt=0, le=MAX_PRICE, max_digits=9, decimal_places=2, allow_inf_nan=False, examples=["19.99"]
    ),
]
Quantity = Annotated[int, Field(strict=True, gt=0, le=MAX_QUANTITY)]
StockQuantity = Annotated[int, Field(strict=True, gt=0, le=MAX_ON_HAND)]
Delta = Annotated[int, Field(strict=True, ge=-MAX_ON_HAND, le=MAX_ON_HAND)]


class RegisterProductRequest(BaseModel):
    """Register a product under a new SKU."""

    model_config = _strict_config(
        {"sku": "MUG-001", "name": "Mug", "price": "9.50", "category": "kitchen"}
    )

    sku: Sku
    name: Name
    description: Description = ""
    price: Price
    category: Label
    unit: Unit = "each"

    def to_command(self) -> commands.RegisterProduct:
        """The domain command."""
        return commands.RegisterProduct(
            self.sku, self.name, self.price, self.category, self.description, self.unit
        )


class RenameProductRequest(BaseModel):
    """Rename a product."""

    model_config = _strict_config({"name": "Large mug"})
    name: Name


class RepriceProductRequest(BaseModel):
    """Set a product's unit price (a decimal string or number, at most 2 places)."""

    model_config = _strict_config({"price": "11.00"})
    price: Price


class DiscontinueProductRequest(BaseModel):
    """Withdraw a product from sale."""

    model_config = _strict_config({"reason": "supplier stopped making it"})
    reason: Note = ""


class ReceiveStockRequest(BaseModel):
    """Goods received for a SKU."""

    model_config = _strict_config({"quantity": 20, "reference": "PO-1234"})
    quantity: StockQuantity
    reference: Note = ""


class AdjustStockRequest(BaseModel):
    """Correct a SKU's on-hand count (never below what is reserved)."""

    model_config = _strict_config({"delta": -2, "reason": "broken in transit"})
    delta: Delta
    reason: Annotated[Note, StringConstraints(min_length=1)]

    @model_validator(mode="after")
    def _nonzero(self) -> AdjustStockRequest:
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class OrderLineRequest(BaseModel):
    """One SKU and its quantity."""

    model_config = ConfigDict(extra="forbid")
    sku: Sku
    quantity: Quantity


class PlaceOrderRequest(BaseModel):
    """Place an order; unit prices are taken from the catalog at this moment."""

    model_config = _strict_config(
        {
            "customer_id": "0b7e3c4e-6a3e-4c1b-9a8d-2f1f3b2a1c00",
            "lines": [{"sku": "MUG-001", "quantity": 2}],
        }
    )
    customer_id: UUID
    lines: Annotated[list[OrderLineRequest], Field(min_length=1, max_length=MAX_LINES)]

    @model_validator(mode="after")
    def _one_line_per_sku(self) -> PlaceOrderRequest:
        skus = [line.sku.upper() for line in self.lines]
        if len(set(skus)) != len(skus):
            raise ValueError("each SKU may appear on one line only")
        return self

    def to_command(self) -> commands.PlaceOrder:
        """The domain command."""
        lines = tuple(commands.RequestedLine(line.sku, line.quantity) for line in self.lines)
        # Time-ordered: a new order's stream goes to the right edge of the stream index.
        return commands.PlaceOrder(self.customer_id, lines, uuid7())


class CancelOrderRequest(BaseModel):
    """Cancel a pending or confirmed order."""

    model_config = _strict_config({"reason": "customer changed their mind"})
    reason: Annotated[Note, StringConstraints(min_length=1)]


class ShipOrderRequest(BaseModel):
    """Ship a confirmed order (no fields)."""

    model_config = _strict_config({})


class CommandResponse(BaseModel):
    """Where the command's events landed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0da8ceb0-d277-5ab7-ae95-19ea90b20990",
                    "version": 1,
                    "position": "00000000000002db0000000000000001",
                }
            ]
        }
    )
    id: UUID
    version: int
    position: str | None
