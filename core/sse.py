"""Server-Sent Events responses that end, with a reason, instead of buffering without bound.

The producer is pulled, never pushed: the next chunk is made only once the last one was handed
to the server, so a consumer that reads slowly makes the producer wait, and nothing queues in
this process. A consumer that does not take a chunk within `send_timeout` is cut off: a last
`event: end` with the reason goes out (it reaches a client that is still reading), and the
connection closes. A client that leaves is noticed at once, even while the producer waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from core.supervisor import describe, kind_of

log = logging.getLogger(__name__)
MEDIA_TYPE = "text/event-stream"
FINAL_SEND_SECONDS = 0.5  # for the last event to a consumer that is cut off


class StreamEnded(Exception):
    """Raised by a producer to end its stream with a reason the client is told."""


def end_event(reason: str) -> bytes:
    """The last event of a stream: why it ends (the client may reconnect and resume)."""
    return b"event: end\ndata: %s\n\n" % orjson.dumps({"reason": reason})


def comment(text: str) -> bytes:
    """An SSE comment line (a heartbeat): clients ignore it, proxies see traffic."""
    return b": %s\n\n" % text.encode()


class EventStream(Response):
    """A `text/event-stream` response fed by an async iterator of ready-made SSE chunks."""

    media_type = MEDIA_TYPE

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        send_timeout: float,
        on_end: Callable[[str], None] | None = None,
        headers: dict[str, str] | None = None,
        max_seconds: float | None = None,
        status_code: int = 200,  # as FastAPI reads a response class's default for OpenAPI
    ) -> None:
        # No caching or proxy buffering: each event must reach the client as it is sent.
        extra = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})}
        super().__init__(None, status_code, extra, MEDIA_TYPE)
        # A stream has no length: the body is chunked until one side ends it.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.chunks, self.send_timeout, self.on_end = chunks, send_timeout, on_end
        self.max_seconds = max_seconds  # then the stream ends, and the client reconnects

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then chunks until the producer ends or the client goes."""
        reason = "client left"
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            start["headers"] = self.raw_headers
            await send(start)
            reason = await self._pump(receive, send)
        finally:  # whatever happened, the stream's place is given back
            if self.on_end is not None:
                self.on_end(reason)

    async def _pump(self, receive: Receive, send: Send) -> str:
        gone = asyncio.ensure_future(_disconnected(receive))
        chunks = aiter(self.chunks)
        deadline = time.monotonic() + (self.max_seconds or float("inf"))
        try:
            while True:
                following = asyncio.ensure_future(anext(chunks))
                left = deadline - time.monotonic()
                await asyncio.wait(
                    {following, gone},
                    timeout=left if left < float("inf") else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if gone.done():
                    await _cancel(following)
                    return "client left"
                if not following.done():
                    await _cancel(following)
                    reason = (
                        f"the stream reached its {self.max_seconds:g} s; resume with Last-Event-ID"
                    )
                    await self._close(send, reason)
                    return "lifetime"
                try:
                    chunk = following.result()
                except StopAsyncIteration:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return "ended"
                except Exception as exc:
                    return await self._last(send, exc)
                try:
                    body = {"type": "http.response.body", "body": chunk, "more_body": True}
                    await asyncio.wait_for(send(body), self.send_timeout)
                except TimeoutError:
                    # The last event only reaches a client that frees room for it: the server
                    # log and the metric are where the reason always shows.
                    reason = f"slow consumer: nothing taken for {self.send_timeout:g} s"
                    log.warning("event stream cut off: %s", reason)
                    await self._close(send, reason)
                    return "slow consumer"
        finally:
            await _cancel(gone)
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]

    async def _last(self, send: Send, exc: Exception) -> str:
        """End the stream after the producer raised, telling the client why."""
        if isinstance(exc, StreamEnded):
            reason, label = str(exc), "ended"
        elif kind_of(exc) == "infrastructure":
            reason, label = f"unavailable: {describe(exc)}", "unavailable"
        else:
            log.error("event stream failed", exc_info=exc)
            reason, label = "internal error", "error"
        await self._close(send, reason)
        return label

    async def _close(self, send: Send, reason: str) -> None:
        body = {"type": "http.response.body", "body": end_event(reason), "more_body": False}
        with contextlib.suppress(Exception):
            await asyncio.wait_for(send(body), FINAL_SEND_SECONDS)


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
