"""A Server-Sent Events reader for tests: the events of a stream, as the spec parses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Message:
    """One dispatched event (or a comment, with `comment` set)."""

    id: str | None = None
    event: str = "message"
    data: list[str] = field(default_factory=list)
    comment: str | None = None

    @property
    def text(self) -> str:
        """The data lines joined as the spec joins them."""
        return "\n".join(self.data)


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """Every event and comment of a streaming response, in order."""
    current = Message()
    async for line in response.aiter_lines():
        if line == "":
            if current.data or current.id is not None:
                yield current
            current = Message()
        elif line.startswith(":"):
            yield Message(comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                current.id = value
            elif name == "event":
                current.event = value
            elif name == "data":
                current.data.append(value)
