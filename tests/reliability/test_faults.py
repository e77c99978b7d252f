"""The fault matrix: real processes killed, stopped and restarted by pid under command load.

Each test ends with the same proof (see faults.py): every 2xx command stored exactly once, no
partial append, `ordertrail audit --all` clean, every projection equal to a from-scratch rebuild.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from command_api.app import create_app
from core.settings import Settings
from eventstore.driver import dispose
from eventstore.listen import LISTENER_NAME
from eventstore.postgres import PostgresEventStore
from messaging import REBUILD_ACTOR, REPLAY_ACTOR, appended_message, create_broker, job_message
from projections.checkpoints import Checkpoints
from query_api.app import create_app as create_query_app
from tests.ops.helpers import seed_catalog
from tests.reliability.faults import (
    CommandLoad,
    Db,
    WorkerProcess,
    assert_consistent,
    product_id,
    wait_for,
    workers,
)
from tests.support.mongo import OwnMongo
from tests.support.postgres import OwnPostgres, migrated_own_postgres
from tests.support.redis import OwnRedis
from tests.support.servers import asgi_client, free_port, with_database
from workers.jobs import Jobs

Auth = Callable[..., dict[str, str]]
SKUS = ["FAULT-A", "FAULT-B", "FAULT-C", "FAULT-D"]


@contextlib.asynccontextmanager
async def command_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The command API on `settings`' stores (in process, its lifespan running)."""
    app = create_app(settings)
    async with asgi_client(app, "http://api") as client:
        yield client


@pytest.fixture
def scale(long_form: bool) -> int:
    """How much longer each phase runs: 10x in the long form."""
    return 10 if long_form else 1


@pytest.fixture
def fault_settings(read_settings: Settings, clean_db: None) -> Settings:
    """The test's own read-model database on the run's servers, an empty event store."""
    return read_settings


async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    fault_settings: Settings,
    engine: AsyncEngine,
    mongo_db: Db,
    pg_store: PostgresEventStore,
    api: httpx.AsyncClient,
    auth: Auth,
    scale: int,
    tmp_path: Path,
) -> None:
    """kill -9 while a batch is being written; a new worker takes over and finishes the job."""
    await seed_catalog(pg_store, 400)  # 1,600 events: several batches of 100 to be inside of
    load = CommandLoad(api, auth(), SKUS, scale=scale)
    await load.setup()
    checkpoints = Checkpoints(mongo_db)

    async def part_way() -> bool:
        saved = await checkpoints.load("products")
        return saved is not None and bool(await pg_store.read_all(saved, limit=1))

    with contextlib.ExitStack() as cleanup:
        first = WorkerProcess(fault_settings, tmp_path / "first.log", PROJECTION_BATCH_SIZE="100")
        first.start()
        cleanup.callback(first.stop)
        async with load.running():
            await wait_for(part_way, "the worker to be part-way through", 60)
            first.kill()
            await load.until(40)
            second = WorkerProcess(fault_settings, tmp_path / "second.log")
            second.start()
            cleanup.callback(second.stop)
            await load.until(40)
        await assert_consistent(fault_settings, engine, mongo_db, load)
    assert load.statuses().keys() <= {200, 201, 409}, load.statuses()


async def test_workers_racing_for_every_projection_apply_each_event_once(
    fault_settings: Settings,
    engine: AsyncEngine,
    mongo_db: Db,
    api: httpx.AsyncClient,
    auth: Auth,
    scale: int,
    tmp_path: Path,
) -> None:
    """Three worker processes start together and all try to own every subscriber."""
    load = CommandLoad(api, auth(), SKUS, scale=scale)
    await load.setup()
    with workers(fault_settings, tmp_path, count=3, PROJECTION_BATCH_SIZE="20"):
        async with load.running():
            await load.until(150)
        await assert_consistent(fault_settings, engine, mongo_db, load)
    assert load.statuses().keys() <= {200, 201, 409}, load.statuses()


async def test_redis_stopped_under_command_load_costs_no_command_and_no_event(
    fault_settings: Settings,
    engine: AsyncEngine,
    mongo_db: Db,
    own_redis: OwnRedis,
    auth: Auth,
    scale: int,
    tmp_path: Path,
) -> None:
    """Commands keep succeeding without Redis; the worker catches up from NOTIFY and ticks."""
    settings = fault_settings.model_copy(update={"redis_url": own_redis.url})
    async with command_api(settings) as api:
        load = CommandLoad(api, auth(), SKUS, scale=scale)
        await load.setup()
        with workers(settings, tmp_path):
            async with load.running():
                await load.until(30)
                own_redis.stop()
                during = len(load.outcomes)
                await load.until(60)
                outage = load.outcomes[during:]
                own_redis.start()
                await load.until(30)
            await assert_consistent(settings, engine, mongo_db, load)
    assert {o.status for o in outage} <= {200, 201, 409}, [o.status for o in outage]
    # Redis down must not stall a command: signals are best-effort with a short timeout.
    assert max(o.seconds for o in outage) < 5.0


async def test_the_mongo_server_stopped_under_load_is_caught_up_exactly_once(
    fault_settings: Settings,
    engine: AsyncEngine,
    api: httpx.AsyncClient,
    auth: Auth,
    scale: int,
    reader: dict[str, str],
    tmp_path: Path,
) -> None:
    """Projections stall while the read-model server is down, then finish with nothing doubled."""
    mongo = OwnMongo(free_port(), tmp_path / "mongo")
    mongo.start()
    settings = fault_settings.model_copy(update={"mongodb_url": mongo.url})
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.url, tz_aware=True)
    db = client[settings.mongodb_db]
    query_app = create_query_app(settings)
    try:
        load = CommandLoad(api, auth(), SKUS, scale=scale)
        await load.setup()
        with workers(settings, tmp_path, PROJECTION_BATCH_SIZE="50"):
            async with query_app.router.lifespan_context(query_app), load.running():
                transport = httpx.ASGITransport(app=query_app)
                async with httpx.AsyncClient(transport=transport, base_url="http://q") as query:
                    await load.until(40)
                    mongo.stop()
                    await load.until(60)
                    down = await query.get("/api/v1/products", headers=reader)
                    mongo.start()
                    await load.until(40)
                    up = await query.get("/api/v1/products", headers=reader)
            await assert_consistent(settings, engine, db, load)
    finally:
        await client.close()
        mongo.stop()
    assert down.status_code == 503, down.text
    assert up.status_code == 200, up.text
    assert load.statuses().keys() <= {200, 201, 409}, load.statuses()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL server this test may stop and restart, with a migrated database."""
    with migrated_own_postgres() as (server, _):
        yield server


async def test_postgres_restarted_under_load_answers_503_and_never_a_false_2xx(
    fault_settings: Settings,
    own_postgres: OwnPostgres,
    mongo_db: Db,
    auth: Auth,
    scale: int,
    tmp_path: Path,
) -> None:
    """Commands fail fast with 503 while the store is down; every 2xx is stored, none partially."""
    url = (
        "postgresql+asyncpg://"
        + with_database(own_postgres.admin_url, "ordertrail").split("://")[1]
    )
    settings = fault_settings.model_copy(update={"database_url": url})
    engine = create_async_engine(url)
    try:
        async with command_api(settings) as api:
            load = CommandLoad(api, auth(), SKUS, scale=scale)
            await load.setup()
            with workers(settings, tmp_path):
                async with load.running():
                    await load.until(40)
                    own_postgres.stop()
                    during = len(load.outcomes)
                    await load.until(20)
                    outage = load.outcomes[during:]
                    own_postgres.start()
                    back = len(load.outcomes)
                    await wait_for(lambda: _succeeded_since(load, back), "commands to recover", 30)
                    # The worker's LISTEN connection comes back too (else it would tick along).
                    await wait_for(lambda: _listening(engine), "the worker to LISTEN again", 30)
                    await load.until(40)
                await assert_consistent(settings, engine, mongo_db, load)
    finally:
        await dispose(engine)
    assert {o.status for o in outage} <= {503, 200, 201, 409}, [o.status for o in outage]
    assert any(o.status == 503 for o in outage)
    # Fail fast: a client learns the store is down within the connect timeout, not a hang.
    assert max(o.seconds for o in outage if o.status == 503) < settings.db_connect_timeout + 2


async def _listening(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
        return bool(await conn.scalar(sa.text(query), {"name": LISTENER_NAME}))


async def _succeeded_since(load: CommandLoad, start: int) -> bool:
    return any(200 <= o.status < 300 for o in load.outcomes[start:])


async def test_every_dramatiq_message_delivered_twice_has_one_effect(
    fault_settings: Settings,
    engine: AsyncEngine,
    mongo_db: Db,
    api: httpx.AsyncClient,
    auth: Auth,
    scale: int,
    tmp_path: Path,
) -> None:
    """Duplicate `appended`, rebuild and replay messages: each job's effect happens once."""
    load = CommandLoad(api, auth(), SKUS, scale=scale)
    await load.setup()
    broker, jobs = create_broker(fault_settings.redis_url), Jobs(mongo_db)
    with workers(fault_settings, tmp_path, count=2):
        async with load.running():
            await load.until(40)
            head = (await PostgresEventStore(engine).read_all(None, limit=10_000))[-1].position
            rebuild = await jobs.create("rebuild", "products")
            another = await jobs.create("rebuild", "products")  # a second job for the same view
            replay = await jobs.create("replay", product_id(SKUS[0]))
            for message in (
                appended_message(head.token),
                job_message(REBUILD_ACTOR, rebuild, "products"),
                job_message(REBUILD_ACTOR, another, "products"),
                job_message(REPLAY_ACTOR, replay, product_id(SKUS[0])),
            ):
                for _ in range(2):  # the same message, delivered twice (a new id each time)
                    broker.enqueue(message.copy(message_id=str(uuid.uuid4())))
            await load.until(60)  # commands keep coming while the jobs start and run
        # The load stops here, so the volume to check stays bounded however slow the machine.
        for job in (rebuild, another, replay):
            # Generous: the two rebuilds run one after the other on a loaded machine.
            await wait_for(lambda j=job: _finished(jobs, j), f"job {job}", 180)  # type: ignore[misc]
        await assert_consistent(fault_settings, engine, mongo_db, load)
    for job in (rebuild, another, replay):
        doc = await jobs.get(job)
        assert doc is not None and doc["status"] == "done", doc
        assert doc["runs"] == 1, doc  # the duplicate delivery found the job taken
    assert load.statuses().keys() <= {200, 201, 409}, load.statuses()


async def _finished(jobs: Jobs, job_id: str) -> bool:
    doc = await jobs.get(job_id)
    return doc is not None and doc["status"] in ("done", "failed")
