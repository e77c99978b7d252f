"""The fault matrix's tools: worker processes, a command load, and the end-of-test proofs.

Every fault test ends the same way: every 2xx command's events are in the store exactly once and
no stream has a gap (no partial append), `ordertrail audit --all` reports no hole, and each
projection's live view equals a from-scratch rebuild of it (a lost or doubled effect shows up as
a difference there: a missing document, or a counter off by one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.context import WORKER_ARGV
from core.settings import Settings
from domain import values
from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases
from projections.checkpoints import Checkpoints, ParkedEvents
from projections.registry import COLLECTIONS, PROJECTIONS, build
from workers.fulfilment import FulfilmentProcess
from workers.rebuild import Named
from workers.runner import CatchUp

Db = AsyncDatabase[dict[str, Any]]
SUBSCRIBERS = [*PROJECTIONS, FulfilmentProcess.name]
ORDERTRAIL = Path(sys.executable).parent / "ordertrail"


def process_env(settings: Settings) -> dict[str, str]:
    """The environment a worker or CLI process needs to use `settings`' stores."""
    return {
        "DATABASE_URL": settings.database_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DB": settings.mongodb_db,
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET": "unused-by-workers-" + "x" * 16,
        "PROJECTION_TICK_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
    }


class WorkerProcess:
    """`dramatiq workers.actors` as a child process this test starts, kills and stops by pid."""

    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self.env = {**os.environ, **process_env(settings), **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start one worker process with two consumer threads."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                WORKER_ARGV,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, leases are only freed by their connections closing."""
        if self.process is not None:
            # dramatiq forks its worker process; kill the whole group so no orphan keeps a lease.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it does not end in time."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None


@contextlib.contextmanager
def workers(
    settings: Settings, logs: Path, count: int = 1, **env: str
) -> Iterator[list[WorkerProcess]]:
    """`count` worker processes, each in a process group of its own, stopped afterwards."""
    started = [WorkerProcess(settings, logs / f"worker-{i}.log", **env) for i in range(count)]
    try:
        for worker in started:
            worker.start()
        yield started
    finally:
        for worker in started:
            worker.stop()


@dataclass
class Outcome:
    """One command sent and what came back (status 0: the request itself failed)."""

    op: str
    status: int
    body: dict[str, Any] | None
    seconds: float


@dataclass
class CommandLoad:
    """Mixed commands from several clients on overlapping streams, until stopped."""

    api: httpx.AsyncClient
    headers: dict[str, str]
    skus: list[str]
    clients: int = 4
    seed: int = 7
    # The long form (pytest --long) multiplies every phase of a fault test by this.
    scale: int = 1
    outcomes: list[Outcome] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def setup(self) -> None:
        """Register and stock the SKUs the load works on."""
        for sku in self.skus:
            body = {"sku": sku, "name": sku, "price": "2.50", "category": "faults"}
            await self.send("register", "/api/v1/products", body)
            await self.send("receive", f"/api/v1/stock/{sku}/receive", {"quantity": 1000})
        assert all(o.status in (200, 201) for o in self.outcomes), self.outcomes

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CommandLoad]:
        """Run the clients while inside."""
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    async def until(self, commands: int, seconds: float = 60) -> None:
        """Wait until at least `commands` more commands have been answered."""
        commands, seconds = commands * self.scale, seconds * self.scale
        target, deadline = len(self.outcomes) + commands, time.monotonic() + seconds
        while len(self.outcomes) < target:
            assert time.monotonic() < deadline, f"only {len(self.outcomes)} of {target} commands"
            await asyncio.sleep(0.05)

    async def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        while not self._stop.is_set():
            await self._one(rng)
            await asyncio.sleep(0.005)  # a steady load, not a tight loop starving the others

    async def _one(self, rng: random.Random) -> None:
        sku, roll = rng.choice(self.skus), rng.random()
        if roll < 0.45:
            lines = [{"sku": sku, "quantity": rng.randint(1, 3)}]
            body = {"customer_id": str(uuid.uuid4()), "lines": lines}
            outcome = await self.send("place", "/api/v1/orders", body)
            if outcome.status == 201 and outcome.body is not None:
                self.orders.append(outcome.body["id"])
        elif roll < 0.65:
            body = {"quantity": rng.randint(1, 5)}
            await self.send("receive", f"/api/v1/stock/{sku}/receive", body)
        elif roll < 0.75 and self.orders:
            body = {"reason": "changed my mind"}
            await self.send("cancel", f"/api/v1/orders/{rng.choice(self.orders)}/cancel", body)
        elif roll < 0.85:
            product = product_id(sku)
            body = {"price": f"{rng.randint(100, 999) / 100:.2f}"}
            await self.send("reprice", f"/api/v1/products/{product}/reprice", body)
        else:
            fresh = f"F-{uuid.uuid4().hex[:10].upper()}"
            body = {"sku": fresh, "name": fresh, "price": "1.00", "category": "faults"}
            await self.send("register", "/api/v1/products", body)

    async def send(self, op: str, path: str, body: dict[str, Any]) -> Outcome:
        """POST one command and record the outcome."""
        started = time.perf_counter()
        try:
            response = await self.api.post(path, json=body, headers=self.headers)
        except httpx.HTTPError:
            outcome = Outcome(op, 0, None, time.perf_counter() - started)
        else:
            payload = response.json() if response.content else None
            outcome = Outcome(op, response.status_code, payload, time.perf_counter() - started)
        self.outcomes.append(outcome)
        return outcome

    def statuses(self) -> dict[int, int]:
        """How many commands got each status."""
        counts: dict[int, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts


def product_id(sku: str) -> str:
    """A product's id: UUIDv5 of its SKU, as the command API derives it."""
    return str(values.product_id(sku))


async def assert_successes_stored_once(engine: AsyncEngine, load: CommandLoad) -> None:
    """Every 2xx's event is in the store; no stream has a gap; no answer was a 500."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT stream_id, version FROM events"))).all()
        gapped = (
            await conn.execute(
                sa.text(
                    "SELECT stream_id FROM events GROUP BY stream_id "
                    "HAVING count(*) <> max(version) OR min(version) <> 1"
                )
            )
        ).all()
    stored = {(str(stream), version) for stream, version in rows}
    assert len(stored) == len(rows)  # UNIQUE(stream_id, version) makes a double impossible
    ok = [o for o in load.outcomes if 200 <= o.status < 300 and o.body is not None]
    missing = [o for o in ok if (o.body["id"], o.body["version"]) not in stored]  # type: ignore[index]
    assert not missing, f"2xx answers whose events are not stored: {missing[:5]}"
    assert not gapped, f"streams with a gap (a partial append): {gapped[:5]}"
    assert not [o for o in load.outcomes if o.status >= 500 and o.status != 503], load.statuses()


async def settled(engine: AsyncEngine, db: Db, seconds: float = 120) -> None:
    """Wait until every subscriber's checkpoint is at the head and stays there."""
    store, checkpoints = PostgresEventStore(engine), Checkpoints(db)
    deadline, quiet = time.monotonic() + seconds, 0
    while quiet < 2:  # twice in a row: the fulfilment process appends while it catches up
        positions = [await checkpoints.load(name) for name in SUBSCRIBERS]
        behind = [p is None or bool(await store.read_all(p, limit=1)) for p in positions]
        quiet = 0 if any(behind) else quiet + 1
        lagging = [name for name, late in zip(SUBSCRIBERS, behind, strict=True) if late]
        assert time.monotonic() < deadline, f"{lagging} never caught up"
        await asyncio.sleep(0.3)


async def audit_clean(settings: Settings) -> dict[str, Any]:
    """`ordertrail audit --all --json` on the test's stores; it must exit 0 with no hole."""
    env = {**os.environ, **process_env(settings)}
    argv = [str(ORDERTRAIL), "audit", "--all", "--json"]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert set(report) == set(SUBSCRIBERS) or set(report) >= set(PROJECTIONS), report
    assert not any(result["holes"] for result in report.values()), report
    return report


async def differences_from_rebuild(engine: AsyncEngine, db: Db, name: str) -> list[str]:
    """Project every event from zero into scratch collections; how the live view differs."""
    scratch = {c: f"{c}__verify" for c in COLLECTIONS[name]}
    subscriber = Named(build(name, db, scratch), f"{name}@verify")
    store = PostgresEventStore(engine)
    await CatchUp(store, Checkpoints(db), ParkedEvents(db), batch_size=1000).run(subscriber)
    _, live = await Aliases(db).live(name)
    found: list[str] = []
    for logical in COLLECTIONS[name]:
        have = {d["_id"]: d async for d in db[live[logical]].find({})}
        want = {d["_id"]: d async for d in db[scratch[logical]].find({})}
        for key in sorted(set(have) | set(want), key=str):
            if have.get(key) != want.get(key):
                found.append(f"{logical}[{key}]: live {have.get(key)} != rebuilt {want.get(key)}")
        await db.drop_collection(scratch[logical])
    await Checkpoints(db).reset(subscriber.name)
    return found


async def assert_consistent(
    settings: Settings, engine: AsyncEngine, db: Db, load: CommandLoad
) -> dict[str, Any]:
    """The fault matrix's common ending: stored once, audit clean, views equal a rebuild."""
    await assert_successes_stored_once(engine, load)
    await settled(engine, db)
    report = await audit_clean(settings)
    differences = {name: await differences_from_rebuild(engine, db, name) for name in PROJECTIONS}
    async with engine.connect() as conn:
        events = await conn.scalar(sa.text("SELECT count(*) FROM events"))
    figures = {
        "commands": len(load.outcomes),
        "statuses": load.statuses(),
        "events": events,
        "audited": sum(result["checked"] for result in report.values()),
        "lost": sum(len(result["holes"]) for result in report.values()),
        "view_differences": sum(len(found) for found in differences.values()),
    }
    # Printed for docs/reliability.md (pytest -s shows it); the assertions below are the proof.
    print(f"\nfault figures: {json.dumps(figures)}")
    for name, found in differences.items():
        assert not found, f"{name} differs from a rebuild: {found[:5]}"
    return figures


async def wait_for(check: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    """Poll an async `check` until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while not (value := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return value
