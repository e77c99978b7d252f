"""Reading jsonb columns whichever way the driver hands them over."""

from __future__ import annotations

import json
from typing import Any


def as_json(value: Any) -> Any:
    """A jsonb column's value, whether the driver decoded it already or not."""
    return json.loads(value) if isinstance(value, str | bytes) else value
