"""The idempotency purge on PostgreSQL: what it deletes, what it leaves, and that it never waits."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore.base import IdempotencyClaim
from eventstore.postgres import PostgresEventStore

EXPIRE = sa.text(
    "UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE key = ANY(:keys)"
)


async def done(store: PostgresEventStore, *keys: str) -> None:
    """Claim and complete each key, as a command with an Idempotency-Key does."""
    for key in keys:
        claim = await store.claim_idempotency("alice", key, "h")
        assert isinstance(claim, IdempotencyClaim)
        await store.complete_idempotency(claim, {"key": key})


async def expire(engine: AsyncEngine, *keys: str) -> None:
    """Age these records past their time to live (as 24 hours would)."""
    async with engine.begin() as conn:
        await conn.execute(EXPIRE, {"keys": list(keys)})


async def keys_left(engine: AsyncEngine) -> set[str]:
    """The keys the table still holds."""
    async with engine.connect() as conn:
        return set((await conn.scalars(sa.text("SELECT key FROM idempotency_records"))).all())


async def test_expired_records_go_and_live_ones_stay(
    engine: AsyncEngine, pg_store: PostgresEventStore, clean_db: None
) -> None:
    await done(pg_store, "old-1", "old-2", "fresh")
    abandoned = await pg_store.claim_idempotency("alice", "abandoned", "h")
    held = await pg_store.claim_idempotency("alice", "held", "h")
    assert isinstance(abandoned, IdempotencyClaim) and isinstance(held, IdempotencyClaim)
    await expire(engine, "old-1", "old-2", "abandoned", "held")
    async with engine.begin() as conn:
        # A request that died in flight (its lock ran out) and one still running (lock live).
        lock = "UPDATE idempotency_records SET locked_until = now() + :s * interval '1 second' "
        await conn.execute(sa.text(lock + "WHERE key = 'abandoned'"), {"s": -1})
        await conn.execute(sa.text(lock + "WHERE key = 'held'"), {"s": 30})

    assert await pg_store.purge_idempotency(100) == 3
    assert await keys_left(engine) == {"fresh", "held"}
    await pg_store.complete_idempotency(held, {"late": True})  # still its own: no ClaimLost


async def test_a_purge_deletes_at_most_one_batch(
    engine: AsyncEngine, pg_store: PostgresEventStore, clean_db: None
) -> None:
    keys = [f"k-{n:02d}" for n in range(25)]
    await done(pg_store, *keys)
    await expire(engine, *keys)
    left = []
    for _ in range(4):
        await pg_store.purge_idempotency(10)
        left.append(len(await keys_left(engine)))
    assert left == [15, 5, 0, 0]


async def test_a_locked_record_is_skipped_without_waiting_and_purges_do_not_overlap(
    engine: AsyncEngine, pg_store: PostgresEventStore, clean_db: None
) -> None:
    keys = [f"k-{n:02d}" for n in range(40)]
    await done(pg_store, *keys)
    await expire(engine, *keys)
    async with engine.connect() as holder:
        # A transaction holding one row, as a claim taking the key over would.
        lock = "SELECT 1 FROM idempotency_records WHERE key = 'k-00' FOR UPDATE"
        await holder.execute(sa.text(lock))
        purges = [pg_store.purge_idempotency(10) for _ in range(6)]
        deleted = await asyncio.wait_for(asyncio.gather(*purges), 5)
        assert sum(deleted) == 39 and max(deleted) <= 10
        assert await keys_left(engine) == {"k-00"}
        await holder.rollback()
    assert await pg_store.purge_idempotency(10) == 1


async def test_a_purged_key_is_a_fresh_claim(
    engine: AsyncEngine, pg_store: PostgresEventStore, clean_db: None
) -> None:
    await done(pg_store, "again")
    assert await pg_store.claim_idempotency("alice", "again", "h") == {"key": "again"}
    await expire(engine, "again")
    assert await pg_store.purge_idempotency(10) == 1
    assert await keys_left(engine) == set()

    fresh = await pg_store.claim_idempotency("alice", "again", "h")
    assert isinstance(fresh, IdempotencyClaim)
    await pg_store.complete_idempotency(fresh, {"second": True})
    assert await pg_store.claim_idempotency("alice", "again", "h") == {"second": True}
