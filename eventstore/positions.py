"""Position tokens: an event's place in commit order, as an opaque, sortable string."""

from __future__ import annotations

import re
from typing import NamedTuple

_TOKEN = re.compile(r"^[0-9a-f]{32}$")


class InvalidPosition(ValueError):
    """A string that is not a position token."""


class Position(NamedTuple):
    """(transaction id, global position): the order in which readers see events."""

    transaction_id: int
    position: int

    @property
    def token(self) -> str:
        """Fixed-width hex, so tokens compare as strings the way positions compare."""
        return f"{self.transaction_id:016x}{self.position:016x}"

    @classmethod
    def parse(cls, token: str) -> Position:
        """Decode a token; raise InvalidPosition for anything else."""
        if not _TOKEN.match(token):
            raise InvalidPosition(f"not a position token: {token[:40]!r}")
        return cls(int(token[:16], 16), int(token[16:], 16))


ORIGIN = Position(0, 0)
