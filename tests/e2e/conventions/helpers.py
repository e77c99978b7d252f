"""What the HTTP convention tests share: the auth fixture's type and a registration body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.helpers import new_sku

Auth = Callable[..., dict[str, str]]
JSON = {"Content-Type": "application/json"}


def product_body(sku: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid registration body."""
    return {"sku": sku or new_sku(), "name": "Mug", "price": "9.50", "category": "kitchen"} | fields
