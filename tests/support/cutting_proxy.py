"""A TCP proxy in front of PostgreSQL that cuts a session at a chosen protocol message.

What a lost connection at the worst moment looks like to the client, for real: the proxy
forwards every message unchanged until it is armed, then closes both sockets instead of
forwarding the first matching one. Cut on the server's `COMMIT` reply, the transaction has
committed and the client never hears of it; cut on the client's `COMMIT`, the server never
gets it and rolls back. Sessions are unencrypted: the proxy declines TLS on the server's
behalf, since it must read the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

# Requests a client sends before its startup message, which a server answers with one byte.
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
Match = Callable[[bytes, bytes], bool]  # (message type, body)


def command_complete(tag: bytes) -> Match:
    """The server's CommandComplete whose tag starts with `tag` (b"COMMIT", b"INSERT")."""
    return lambda kind, body: kind == b"C" and body.startswith(tag)


def parse(text: bytes) -> Match:
    """The client's Parse (a statement prepared, before its first run) whose text has `text`."""
    return lambda kind, body: kind == b"P" and text in body


def simple_query(text: bytes) -> Match:
    """The client's simple Query whose text starts with `text` (asyncpg sends b"COMMIT;")."""
    return lambda kind, body: kind == b"Q" and body.startswith(text)


@dataclass
class CuttingProxy:
    """Forwards 127.0.0.1:`port` to the upstream server; `arm` makes it cut one session."""

    upstream: tuple[str, int]
    port: int = 0
    cuts: int = 0
    _skip: int = 0
    _to_server: Match | None = None
    _to_client: Match | None = None
    _server: asyncio.Server | None = None
    _sessions: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Listen on a free port of the loopback interface."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end every session."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    def arm(
        self, to_server: Match | None = None, to_client: Match | None = None, skip: int = 0
    ) -> None:
        """Cut the session that sends the next message matching one of these (once), after
        letting `skip` of them through."""
        self._to_server, self._to_client, self._skip = to_server, to_client, skip

    def _cut_here(self, towards_server: bool, kind: bytes, body: bytes) -> bool:
        match = self._to_server if towards_server else self._to_client
        if match is None or not match(kind, body):
            return False
        if self._skip:
            self._skip -= 1
            return False
        self._to_server = self._to_client = None
        self.cuts += 1
        return True

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        try:
            await self._startup(client_r, client_w, server_w)
            pumps = [
                asyncio.create_task(self._pump(client_r, server_w, towards_server=True)),
                asyncio.create_task(self._pump(server_r, client_w, towards_server=False)),
            ]
            try:  # the session ends when either side closes, or when it is cut
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_w, server_w):
                writer.close()
            self._sessions.discard(task)

    async def _startup(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_w: asyncio.StreamWriter,
    ) -> None:
        """Decline TLS and GSS encryption, then pass the startup message on."""
        while True:
            head = await client_r.readexactly(8)
            length, code = struct.unpack("!ii", head)
            if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                server_w.write(head + await client_r.readexactly(length - 8))
                return
            client_w.write(b"N")

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, towards_server: bool
    ) -> None:
        """Forward typed messages one by one until the stream ends or a cut."""
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
                if self._cut_here(towards_server, head[:1], body):
                    return
                writer.write(head + body)
                await writer.drain()
