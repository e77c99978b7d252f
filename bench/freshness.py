"""Figure 5: freshness, from a command's 2xx to the change being readable through the query API.

The command API, the query API and one worker run as child processes. Product registrations go
out open-loop at a steady rate (each on its own schedule, whatever the replies do); right after
each 2xx, the product is fetched with `X-Min-Position: <X-Position>`, and freshness is the time
from the command's 2xx to the query's 200. The worker wakes on NOTIFY / the dramatiq message;
its periodic tick is left at 1 s, so a lost wake-up would show in the tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from pymongo import AsyncMongoClient

from bench.context import BENCH_SECRET, BenchContext
from bench.core import Figure, Mode, percentile, repeat
from core.auth import mint_token

RATE = 200.0  # commands per second, open loop: the load
LOW_RATE = 20.0  # a light load beside it, to tell pipeline latency from queueing
CONNECTIONS = 24  # command+read pairs in flight; beyond that they wait (and the wait counts)
TICK_SECONDS = "1.0"
READY_SECONDS = 60.0
CUTOFF_SECONDS = 2.5  # after the last send; the query API itself gives up waiting after 2 s
SERIES = {RATE: "", LOW_RATE: f" @ {LOW_RATE:g}/s"}


def units(suffix: str) -> dict[str, str]:
    """The measurements of one series."""
    return {
        f"freshness p50 (2xx -> visible){suffix}": "ms",
        f"freshness p99 (2xx -> visible){suffix}": "ms",
        f"command p50{suffix}": "ms",
        f"command p99{suffix}": "ms",
        f"commands achieved{suffix}": "commands/s",
        f"not readable by the cutoff{suffix}": "commands",
    }


@dataclass
class Sample:
    """One command and the read of its result."""

    command_seconds: float = 0.0
    fresh_seconds: float = 0.0
    acknowledged: float = 0.0
    ok: bool = False
    visible: bool = False


class HTTPError(Exception):
    """A connection failed or answered something this client does not speak."""


@dataclass
class Reply:
    """Status, headers (lower-case names) and body of one answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection (lean: httpx costs ~3 ms CPU a request here)."""

    def __init__(self, base_url: str, token: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.fixed = f"Host: {base_url[7:]}\r\nAuthorization: Bearer {token}\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, headers: str = "", body: bytes = b"") -> Reply:
        """Send one request and read its answer; any failure closes the connection."""
        try:
            return await self._exchange(method, path, headers, body)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise HTTPError(str(exc)) from exc

    async def _exchange(self, method: str, path: str, headers: str, body: bytes) -> Reply:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        head = f"{method} {path} HTTP/1.1\r\n{self.fixed}{headers}Content-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if line)
        found = {name.lower(): value for name, value in fields.items()}
        if "content-length" not in found:
            raise ValueError(f"no Content-Length in {lines[0]!r}")
        content = await reader.readexactly(int(found["content-length"]))
        return Reply(int(lines[0].split()[1]), found, content)

    def close(self) -> None:
        """Close the socket, if open."""
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass
class Clients:
    """Lanes of one command-API and one query-API connection; a request pair takes a lane."""

    lanes: asyncio.Queue[tuple[Connection, Connection]]
    skus: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def open(cls, commands: str, queries: str, token: str) -> Clients:
        """`CONNECTIONS` lanes (connected on first use)."""
        lanes: asyncio.Queue[tuple[Connection, Connection]] = asyncio.Queue()
        for _ in range(CONNECTIONS):
            lanes.put_nowait((Connection(commands, token), Connection(queries, token)))
        return cls(lanes)

    def close(self) -> None:
        """Close every lane's connections."""
        while not self.lanes.empty():
            for connection in self.lanes.get_nowait():
                connection.close()


async def register_and_read(clients: Clients, sample: Sample) -> None:
    """Register a product, then read it back with X-Min-Position, filling in `sample`."""
    n = next(clients.skus)
    body = json.dumps(
        {"sku": f"FRESH-{n:07d}", "name": f"Fresh {n}", "price": "9.50", "category": "bench"}
    ).encode()
    sent = time.perf_counter()
    lane = await clients.lanes.get()
    try:
        with contextlib.suppress(HTTPError):
            await exchange(lane, body, sent, sample)
    except asyncio.CancelledError:  # mid-request: its answer must not meet the next request
        for connection in lane:
            connection.close()
        raise
    finally:
        clients.lanes.put_nowait(lane)


async def exchange(
    lane: tuple[Connection, Connection], body: bytes, sent: float, sample: Sample
) -> None:
    """Send the command, then the read with its X-Position; fill in `sample`."""
    commands, queries = lane
    json_type = "Content-Type: application/json\r\n"
    reply = await commands.request("POST", "/api/v1/products", json_type, body)
    sample.acknowledged = time.perf_counter()
    sample.command_seconds = sample.acknowledged - sent
    if not 200 <= reply.status < 300:
        return
    sample.ok = True
    wait = f"X-Min-Position: {reply.headers['x-position']}\r\n"
    read = await queries.request("GET", f"/api/v1/products/{json.loads(reply.body)['id']}", wait)
    sample.fresh_seconds = time.perf_counter() - sample.acknowledged
    sample.visible = read.status == 200


async def open_loop(clients: Clients, rate: float, seconds: float) -> tuple[list[Sample], float]:
    """One registration every 1/rate s for `seconds`; the samples and the start time.

    Whatever has not finished CUTOFF_SECONDS after the last send is cancelled (stays not visible).
    """
    samples = [Sample() for _ in range(max(1, round(rate * seconds)))]
    tasks, started = [], time.perf_counter()
    for i, sample in enumerate(samples):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(register_and_read(clients, sample)))
    _, pending = await asyncio.wait(tasks, timeout=CUTOFF_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:  # let the servers work off what they had already accepted
        await wait_until_projecting(clients)
    return samples, started


async def freshness_run(clients: Clients, rate: float, seconds: float) -> dict[str, float]:
    """One open-loop run at `rate`; its percentiles, achieved rate and misses."""
    samples, started = await open_loop(clients, rate, seconds)
    ok = [s for s in samples if s.ok]
    visible = [s.fresh_seconds * 1000 for s in ok if s.visible]
    commands = [s.command_seconds * 1000 for s in ok]
    last = max((s.acknowledged - started for s in ok), default=float("nan"))
    suffix = SERIES[rate]
    return {
        f"freshness p50 (2xx -> visible){suffix}": percentile(visible, 50),
        f"freshness p99 (2xx -> visible){suffix}": percentile(visible, 99),
        f"command p50{suffix}": percentile(commands, 50),
        f"command p99{suffix}": percentile(commands, 99),
        f"commands achieved{suffix}": len(ok) / last,
        f"not readable by the cutoff{suffix}": len(samples) - len(visible),
    }


async def wait_until_projecting(clients: Clients) -> None:
    """Block until one new registration becomes readable (the worker projects, queues are empty)."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        sample = Sample()
        await register_and_read(clients, sample)
        if sample.visible:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no registration became readable in {READY_SECONDS:g} s")


def conclude(figure: Figure, seconds: float) -> None:
    """Target and notes."""
    p99 = figure.median("freshness p99 (2xx -> visible)")
    achieved = figure.median("commands achieved")
    missed = figure.measurement("not readable by the cutoff", "commands").high
    figure.target(
        f"freshness p99 <= 100 ms (command 2xx -> readable) at {RATE:g} commands/s",
        p99 <= 100 and achieved >= 0.95 * RATE and missed == 0,
        f"p99 {p99:,.1f} ms, p50 {figure.median('freshness p50 (2xx -> visible)'):,.1f} ms at "
        f"{achieved:,.0f} commands/s achieved; up to {missed:,.0f} per run not readable by the "
        f"cutoff; at {LOW_RATE:g}/s: p99 "
        f"{figure.median(f'freshness p99 (2xx -> visible){SERIES[LOW_RATE]}'):,.1f} ms",
    )
    figure.notes += [
        f"Open loop: product registrations scheduled every {1000 / RATE:g} ms (and, beside it, "
        f"every {1000 / LOW_RATE:g} ms) for {seconds:g} s per run, each followed by "
        "GET /api/v1/products/{id} with X-Min-Position = the command's X-Position; freshness = "
        "query 200 time - command 2xx time (the query API waits server-side: while requests "
        "wait, its watcher reads the checkpoints and the documents they wait for every 10 ms, "
        "and answers one as soon as its document's _last reaches the token; at most 2 s, then "
        "503).",
        f"Command latency counts from the scheduled send, including any wait for one of the "
        f"{CONNECTIONS} client lanes (a keep-alive connection to each API; a lean HTTP/1.1 "
        "client, as httpx would take a third of a core here); 'commands achieved' = 2xx "
        "commands / time from the first send to the last 2xx; whatever is unfinished "
        f"{CUTOFF_SECONDS:g} s after the last send is cancelled and counted as not readable.",
        "Child processes: command API, query API, one dramatiq worker (1 process, 2 threads; "
        f"PROJECTION_TICK_SECONDS={TICK_SECONDS}, so wake-ups come from NOTIFY / dramatiq); "
        "PostgreSQL, the MongoDB-wire server, Redis and this load generator share the machine.",
        f"The {LOW_RATE:g}/s series (a diagnostic: at most 2 runs) goes first, with the mode's "
        f"warm-up; the {RATE:g}/s series follows without one of its own.",
    ]


async def drop_mongodb(url: str, name: str) -> None:
    """Drop the read-model database the processes used."""
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        await mongo.drop_database(name)
    finally:
        await mongo.close()


async def measure(ctx: BenchContext, clients: Clients, figure: Figure) -> None:
    """The light series first, with the mode's warm-up (which warms both); then the heavy one."""
    seconds, suffix = ctx.mode.seconds, SERIES[LOW_RATE]
    light: Mode = dataclasses.replace(ctx.mode, repetitions=min(2, ctx.mode.repetitions))
    await repeat(light, lambda: freshness_run(clients, LOW_RATE, seconds), figure, units(suffix))
    heavy: Mode = dataclasses.replace(ctx.mode, warmups=0)
    await repeat(heavy, lambda: freshness_run(clients, RATE, seconds), figure, units(""))


async def run(ctx: BenchContext) -> Figure:
    """Figure 5."""
    figure = Figure(5, "Freshness")
    url = await ctx.fresh_database()
    mongodb_db = f"bench_fig5_{uuid.uuid4().hex[:10]}"
    env = ctx.env(url, mongodb_db, PROJECTION_TICK_SECONDS=TICK_SECONDS)
    token = mint_token(BENCH_SECRET, "bench", ["commands:write", "queries:read"])
    with (
        ctx.server("command_api.main:app", env) as commands,
        ctx.server("query_api.main:app", env) as queries,
        ctx.worker(env),
    ):
        clients = Clients.open(commands, queries, token)
        try:
            await wait_until_projecting(clients)
            await measure(ctx, clients, figure)
        finally:
            clients.close()
    await drop_mongodb(ctx.mongodb_url, mongodb_db)
    conclude(figure, ctx.mode.seconds)
    return figure
