"""Long-running ops jobs (rebuild, replay) and their progress, readable while they run."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from projections.documents import Document

JOBS = "jobs"
# A running job whose owner has not written for this long is taken to be dead (and re-runnable).
STALE_SECONDS = 30.0


class Jobs:
    """Job documents: {_id, kind, target, status, done, total, rate, eta_seconds, result, error}."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[JOBS]

    async def create(self, kind: str, target: str) -> str:
        """A queued job; its id."""
        job_id = uuid.uuid4().hex
        doc = {"_id": job_id, "kind": kind, "target": target, "status": "queued"}
        await self.collection.insert_one(doc | {"created_at": datetime.now(UTC), "done": 0})
        return job_id

    async def get(self, job_id: str) -> Document | None:
        """A job, or None."""
        return await self.collection.find_one({"_id": job_id})

    async def recent(self, limit: int = 20) -> list[Document]:
        """The newest `limit` jobs, newest first."""
        found = self.collection.find({}).sort("created_at", -1).limit(limit)
        return [doc async for doc in found]

    async def claim(self, job_id: str, owner: str) -> bool:
        """Start a job unless it is done or alive elsewhere: a redelivered message is a no-op."""
        now = datetime.now(UTC)
        stale = now - timedelta(seconds=STALE_SECONDS)
        result = await self.collection.update_one(
            {
                "_id": job_id,
                "$or": [
                    {"status": "queued"},
                    # Its worker died mid-run (the broker redelivers its message): take it over.
                    {"status": "running", "heartbeat_at": {"$lt": stale}},
                ],
            },
            {
                "$set": {
                    "status": "running",
                    "owner": owner,
                    "started_at": now,
                    "heartbeat_at": now,
                },
                "$inc": {"runs": 1},
            },
        )
        return result.modified_count == 1

    async def beat(self, job_id: str) -> None:
        """Say the job's owner is alive."""
        await self.update(job_id, heartbeat_at=datetime.now(UTC))

    async def update(self, job_id: str, **fields: Any) -> None:
        """Set fields of a job."""
        await self.collection.update_one({"_id": job_id}, {"$set": fields})


class ProgressReporter:
    """Writes a job's progress at most twice a second, with rate and ETA."""

    def __init__(self, jobs: Jobs, job_id: str, interval: float = 0.5) -> None:
        self.jobs, self.job_id, self.interval = jobs, job_id, interval
        self.started: float | None = None  # the first report: applying starts (see rebuild)
        self.last = time.monotonic()
        self.pending: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        """Note progress (called from the rebuild's batches)."""
        if self.started is None:
            self.started = time.monotonic()
        self.pending = (done, total)

    async def flush(self, force: bool = False) -> None:
        """Write the newest progress if due."""
        now = time.monotonic()
        if self.pending is None or (not force and now - self.last < self.interval):
            return
        done, total = self.pending
        rate = done / max(now - (self.started or now), 1e-9)
        eta = (total - done) / rate if rate else None
        await self.jobs.update(
            self.job_id, done=done, total=total, rate=round(rate, 1), eta_seconds=eta
        )
        self.last = now
