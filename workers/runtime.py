"""Ops jobs (rebuild, replay, retry) run on a worker, with their progress in the job document."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from core.supervisor import Supervisor
from eventstore.repository import Repository
from subscriptions.ports import ReadSide
from workers.jobs import Jobs, ProgressReporter
from workers.rebuild import rebuild
from workers.replay import replay_stream, retry_parked

log = logging.getLogger(__name__)

Work = Callable[[ReadSide, ProgressReporter], Awaitable[Any]]


async def run_job(side: ReadSide, worker: str, job_id: str, work: Work) -> None:
    """Run `work` as `worker`, keeping the job document's status and progress current."""
    jobs = Jobs(side.db)
    if not await jobs.claim(job_id, worker):
        log.info("job %s is done or running elsewhere: this delivery is a duplicate", job_id)
        return
    reporter = ProgressReporter(jobs, job_id)
    try:
        async with _flushing(jobs, job_id, reporter):
            result = await work(side, reporter)
    except Exception as exc:
        await jobs.update(job_id, status="failed", error=str(exc), finished_at=datetime.now(UTC))
        raise
    done = {"status": "done", "finished_at": datetime.now(UTC), "result": _plain(result)}
    await jobs.update(job_id, **done)


@contextlib.asynccontextmanager
async def _flushing(jobs: Jobs, job_id: str, reporter: ProgressReporter) -> AsyncIterator[None]:
    """Progress and heartbeat written while inside, and the last progress on the way out."""
    # Supervised: a flusher that died on one failed write would stop the job's heartbeat,
    # and another worker would take the job over while this one still runs it.
    stop = asyncio.Event()
    flusher = Supervisor(stop, max_delay=5.0)
    flusher.start(f"job {job_id} progress", lambda _: _flush_until(stop, jobs, job_id, reporter))
    try:
        yield
    finally:
        stop.set()
        await flusher.join()
        await reporter.flush(force=True)


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


async def rebuild_job(side: ReadSide, worker: str, job_id: str, projection: str) -> None:
    """The rebuild job."""

    async def work(side: ReadSide, reporter: ProgressReporter) -> Any:
        return await rebuild(projection, side, progress=reporter)

    await run_job(side, worker, job_id, work)


async def retry_job(
    side: ReadSide, worker: str, job_id: str, subscriber: str, repository: Repository
) -> None:
    """The retry-a-subscriber's-parked-events job: {retried, fixed, still_failing}."""

    async def work(side: ReadSide, reporter: ProgressReporter) -> Any:
        return await retry_parked(subscriber, side, repository)

    await run_job(side, worker, job_id, work)


async def replay_job(side: ReadSide, worker: str, job_id: str, stream_id: str) -> None:
    """The replay-one-stream job."""

    async def work(side: ReadSide, reporter: ProgressReporter) -> Any:
        return await replay_stream(UUID(stream_id), side)

    await run_job(side, worker, job_id, work)
