"""Opening the stores for one-off work (ops commands, jobs), and running jobs with progress."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.mongo import create_mongo_client, database
from core.settings import Settings
from core.supervisor import Supervisor
from eventstore.driver import dispose
from projections.documents import Document
from workers.jobs import Jobs, ProgressReporter
from workers.rebuild import rebuild
from workers.replay import replay_stream
from workers.service import worker_name

log = logging.getLogger(__name__)

Stores = tuple[AsyncEngine, AsyncDatabase[Document]]


@contextlib.asynccontextmanager
async def stores(settings: Settings, purpose: str = "ops") -> AsyncIterator[Stores]:
    """PostgreSQL and the read-model database, closed afterwards."""
    engine = create_engine(settings, f"ordertrail-{purpose}")
    client = create_mongo_client(settings, f"ordertrail-{purpose}")
    try:
        yield engine, database(client, settings)
    finally:
        await client.close()
        await dispose(engine)


async def run_job(
    settings: Settings, job_id: str, work: Callable[[Stores, ProgressReporter], Awaitable[Any]]
) -> None:
    """Run `work`, keeping the job document's status and progress current."""
    async with stores(settings, "job") as (engine, db):
        jobs = Jobs(db)
        if not await jobs.claim(job_id, worker_name(settings)):
            log.info("job %s is done or running elsewhere: this delivery is a duplicate", job_id)
            return
        reporter = ProgressReporter(jobs, job_id)
        # Supervised: a flusher that died on one failed write would stop the job's heartbeat,
        # and another worker would take the job over while this one still runs it.
        stop = asyncio.Event()
        flusher = Supervisor(stop, max_delay=5.0)
        flusher.start(
            f"job {job_id} progress", lambda _: _flush_until(stop, jobs, job_id, reporter)
        )
        try:
            result = await work((engine, db), reporter)
        except Exception as exc:
            await jobs.update(
                job_id, status="failed", error=str(exc), finished_at=datetime.now(UTC)
            )
            raise
        finally:
            stop.set()
            await flusher.join()
            await reporter.flush(force=True)
        done = {"status": "done", "finished_at": datetime.now(UTC), "result": _plain(result)}
        await jobs.update(job_id, **done)


async def _flush_until(
    stop: asyncio.Event, jobs: Jobs, job_id: str, reporter: ProgressReporter
) -> None:
    beats = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), reporter.interval)
        if stop.is_set():
            return
        await reporter.flush()
        beats += 1
        if beats % 10 == 0:  # every few seconds: well inside the staleness limit
            await jobs.beat(job_id)


def _plain(result: Any) -> Any:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


async def rebuild_job(settings: Settings, job_id: str, projection: str) -> None:
    """The rebuild job."""

    async def work(s: Stores, reporter: ProgressReporter) -> Any:
        return await rebuild(projection, *s, progress=reporter)

    await run_job(settings, job_id, work)


async def replay_job(settings: Settings, job_id: str, stream_id: str) -> None:
    """The replay-one-stream job."""

    async def work(s: Stores, reporter: ProgressReporter) -> Any:
        return await replay_stream(UUID(stream_id), *s)

    await run_job(settings, job_id, work)
