"""The feed through a real uvicorn server: writers racing three consumers, resumption, limits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any
from uuid import uuid4

import httpx
import orjson

from bench.history import history
from eventstore.postgres import PostgresEventStore
from tests.feed.conftest import READER, WRITER
from tests.support.sse import messages

FEED = "/api/v1/feed"
WRITERS, WRITING_SECONDS = 8, 20.0
SSE = {"Accept": "text/event-stream"}


async def write(client: httpx.AsyncClient, until: float) -> int:
    """Register products and receive their stock until `until`; the commands sent."""
    sent = 0
    while time.monotonic() < until:
        sku = f"FEED-{uuid4().hex[:12].upper()}"
        body = {"sku": sku, "name": sku, "price": "2.50", "category": "feed"}
        assert (await client.post("/api/v1/products", json=body, headers=WRITER)).status_code == 201
        url = f"/api/v1/stock/{sku}/receive"
        answer = await client.post(url, json={"quantity": 5}, headers=WRITER)
        assert answer.status_code == 201, answer.text
        sent += 2
    return sent


async def long_poll(client: httpx.AsyncClient, head: asyncio.Future[str]) -> list[str]:
    """Follow the feed with long-polls until the head, once it is known, is reached."""
    seen: list[str] = []
    after = ""
    while not (head.done() and seen and seen[-1] == head.result()):
        params = {"after": after, "wait": 1, "limit": 250}
        page = (await client.get(FEED, params=params, headers=READER, timeout=10)).json()
        seen += [e["position"] for e in page["events"]]
        after = page["next"] or ""
    return seen


async def stream(
    client: httpx.AsyncClient, head: asyncio.Future[str], cut_after: list[int]
) -> tuple[list[str], int]:
    """Follow the feed over SSE, dropping the connection after each count in `cut_after` events
    and resuming with `Last-Event-ID`; the positions seen, and how many connections it took."""
    seen: list[str] = []
    connections = 0
    while not (head.done() and seen and seen[-1] == head.result()):
        connections += 1
        headers = READER | SSE | ({"Last-Event-ID": seen[-1]} if seen else {})
        async with client.stream("GET", FEED, headers=headers, timeout=30) as response:
            assert response.status_code == 200
            async for message in messages(response):
                if message.id is None:
                    if head.done() and seen and seen[-1] == head.result():
                        break  # a heartbeat at the head: done
                    continue
                assert orjson.loads(message.text)["position"] == message.id
                seen.append(message.id)
                if cut_after and len(seen) >= cut_after[0]:
                    cut_after.pop(0)
                    break  # the client goes away mid-stream
                if head.done() and message.id == head.result():
                    break
    return seen, connections


async def test_three_consumers_see_every_committed_event_once_in_commit_order(
    server: str, pg_store: PostgresEventStore, clean_db: None
) -> None:
    head: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=server, limits=limits) as client:
        consumers = [
            asyncio.create_task(long_poll(client, head)),
            asyncio.create_task(stream(client, head, [])),
            asyncio.create_task(stream(client, head, [100, 400])),
        ]
        await asyncio.sleep(0.5)
        until = time.monotonic() + WRITING_SECONDS
        sent = sum(await asyncio.gather(*(write(client, until) for _ in range(WRITERS))))
        stored = [e.token for e in await read_everything(pg_store)]
        assert len(stored) == sent + sent // 2  # registered, opened and received
        head.set_result(stored[-1])
        polled, (streamed, _), (resumed, connections) = await asyncio.wait_for(
            asyncio.gather(*consumers), 60
        )
    assert polled == stored
    assert streamed == stored
    assert resumed == stored and connections == 3  # cut twice, resumed twice


async def read_everything(store: PostgresEventStore) -> list[Any]:
    """The store's own read-all, from the origin to the head."""
    events: list[Any] = []
    while page := await store.read_all(events[-1].position if events else None, 1000):
        events += page
    return events


async def test_an_idle_stream_gets_heartbeats_and_a_resumed_one_starts_after_its_id(
    server: str, clean_db: None
) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        await write(client, time.monotonic() + 0.3)
        page = await client.get(FEED, params={"limit": 1000}, headers=READER)
        first = page.json()["events"]
        assert 2 < len(first) < 1000  # all of them: 0.3 s of writing is well under 1,000
        headers = READER | SSE | {"Last-Event-ID": first[1]["position"]}
        beats, ids = 0, []
        started = time.monotonic()
        async with client.stream("GET", FEED, headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for message in messages(response):
                if message.comment == "heartbeat":
                    beats += 1
                    if beats == 2:
                        break
                elif message.id is not None:
                    ids.append(message.id)
    assert ids == [e["position"] for e in first[2:]]  # after the Last-Event-ID, not at it
    assert beats == 2 and time.monotonic() - started < 5


async def test_a_consumer_that_stops_reading_is_cut_off_with_a_reason(
    server: str, pg_store: PostgresEventStore, clean_db: None
) -> None:
    for batch in history(30_000):  # about 15 MB of stream: more than any socket buffers
        await pg_store.append(*batch)
    host, port = server.removeprefix("http://").split(":")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a window that fills at once
    raw.connect((host, int(port)))
    auth = READER["Authorization"]
    request = f"GET {FEED}?limit=1000 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
    raw.sendall(f"{request}Authorization: {auth}\r\n\r\n".encode())
    await asyncio.sleep(4)  # not reading: the server's sends stall, then it gives up
    raw.settimeout(2)
    received, closed, deadline = b"", False, time.monotonic() + 20
    with contextlib.suppress(TimeoutError):  # read what was sent, until the server closes
        while time.monotonic() < deadline:
            if not (chunk := await asyncio.to_thread(raw.recv, 1 << 20)):
                closed = True
                break
            received += chunk
    raw.close()
    assert received.startswith(b"HTTP/1.1 200")
    first = (await pg_store.read_all(limit=1))[0]
    assert closed and len(received) < 15_000_000  # cut off long before the stream's end
    assert first.token.encode() in received  # it had begun: this is the slow-consumer cut
    metrics = (await asyncio.to_thread(httpx.get, server + "/metrics")).text
    assert 'ordertrail_feed_streams_ended_total{reason="slow consumer"}' in metrics


async def test_waiting_clients_are_capped_with_a_503(server: str, clean_db: None) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10) as client:
        async with contextlib.AsyncExitStack() as streams:
            for _ in range(3):
                response = await streams.enter_async_context(
                    client.stream("GET", FEED, headers=READER | SSE)
                )
                assert response.status_code == 200
            refused = await client.get(FEED, headers=READER | SSE)
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert "maximum of 3" in refused.json()["detail"]
            poll = await client.get(FEED, params={"wait": 1}, headers=READER)
            assert poll.status_code == 503
            assert (await client.get(FEED, headers=READER)).status_code == 200  # no wait
        deadline = time.monotonic() + 5
        while (await client.get(FEED, params={"wait": 0.1}, headers=READER)).status_code == 503:
            assert time.monotonic() < deadline, "the places of closed streams never came back"
            await asyncio.sleep(0.1)
