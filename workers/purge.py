"""The idempotency purge: expired idempotency records deleted by a worker, off the request path.

Records live `IDEMPOTENCY_TTL_SECONDS`; without a purge the table grows with every keyed command
ever sent. Each pass deletes small batches (short row locks, never waiting for a row a request
holds) until a batch comes back short, then the task sleeps for the interval. One worker at a
time runs a pass (a lease); should two ever overlap, each skips the rows the other has locked.
Under supervision: an outage fails the pass, which is retried after the supervisor's backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from core.metrics import IDEMPOTENCY_PURGED
from core.supervisor import TaskHealth
from eventstore.base import EventStore
from eventstore.listen import wait_any
from subscriptions.ports import Leases

log = logging.getLogger(__name__)
PURGE_TASK = "idempotency-purge"


@dataclass
class IdempotencyPurge:
    """Deletes expired idempotency records in batches of `batch`, every `seconds`."""

    store: EventStore
    leases: Leases
    batch: int
    seconds: float
    stop: asyncio.Event

    async def run(self, health: TaskHealth) -> None:
        """Purge, then wait the interval, until stopped; a failed pass raises (supervised)."""
        while not self.stop.is_set():
            await self.sweep()
            if health.ok():
                log.info("idempotency purge recovered")
            await wait_any(self.stop, seconds=self.seconds)

    async def sweep(self) -> int:
        """One pass, unless another worker is running one: how many records it deleted."""
        lease = self.leases.lease(PURGE_TASK)
        if not await lease.try_acquire():
            return 0
        try:
            purged = await self._batches()
        finally:
            # A failed release (the store went away) must not hide why the pass failed; the
            # lock goes with its connection anyway.
            with contextlib.suppress(Exception):
                await lease.release()
        if purged:
            log.info("purged %d expired idempotency records", purged)
        return purged

    async def _batches(self) -> int:
        """Delete batches until one comes back short (or the worker stops)."""
        purged = 0
        while not self.stop.is_set():
            deleted = await self.store.purge_idempotency(self.batch)
            IDEMPOTENCY_PURGED.inc(deleted)  # each batch as it commits: an outage loses none
            purged += deleted
            if deleted < self.batch:
                break
        return purged
