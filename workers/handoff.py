"""Taking a subscriber over from the workers for a moment (a rebuild's swap, a replay).

The taker asks the owners to let go (a flag with an expiry, renewed while it works), then takes
the lease itself. Workers that see the flag release the lease and do not take it back until the
flag is gone, so the live projection is paused, not raced.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.checkpoints import Checkpoints
from projections.documents import Document
from workers.lease import Lease, owners

FLAG_SECONDS = 30.0


class HandoffTimeout(Exception):
    """The owner did not let go in time."""


@contextlib.asynccontextmanager
async def handoff(
    engine: AsyncEngine, db: AsyncDatabase[Document], name: str, wait: float = 30.0
) -> AsyncIterator[Lease]:
    """Own subscriber `name` while inside; the workers resume it afterwards."""
    checkpoints, lease, taker = Checkpoints(db), Lease(engine, name), uuid.uuid4().hex
    await checkpoints.request_handoff(name, FLAG_SECONDS, taker)
    renew = asyncio.create_task(_renew(checkpoints, name, taker))
    try:
        await _acquire(lease, wait)
        yield lease
    finally:
        renew.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renew
        await lease.release()
        await checkpoints.end_handoff(name, taker)


async def _acquire(lease: Lease, wait: float) -> None:
    if not await lease.acquire(wait):
        # Name the holder: an owner that never lets go is a worker that cannot see the request
        # (another read-model database) or one that is stuck, and the operator must find it.
        holder = (await owners(lease.engine, [lease.name])).get(lease.name)
        raise HandoffTimeout(
            f"the owner of {lease.name} did not let go in {wait:.0f}s (held by {holder})"
        )


async def _renew(checkpoints: Checkpoints, name: str, taker: str) -> None:
    while True:
        await asyncio.sleep(FLAG_SECONDS / 3)
        await checkpoints.request_handoff(name, FLAG_SECONDS, taker)
