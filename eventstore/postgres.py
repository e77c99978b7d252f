"""The PostgreSQL event store (SQLAlchemy Core on asyncpg).

Commit order without gaps and without a table lock: every event row records the writer's
transaction id (`pg_current_xact_id()`, xid8). Readers order by (transaction_id, position) and
read only rows whose transaction id is below the snapshot's xmin, the oldest transaction still
running. Every transaction below xmin has finished, so nothing can later appear behind a
reader's checkpoint. A slow writer holds the watermark back (lag), it never causes a skip, and a
rolled-back transaction stops holding it the moment it ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import idempotency
from eventstore.base import (
    AlreadyAnswered,
    Completion,
    IdempotencyClaim,
    IdempotencyKey,
    SnapshotRecord,
    StoredResponse,
)
from eventstore.batching import Batcher, GroupCommit
from eventstore.completing import BATCH_COMPLETING, Keyed, batch_keys, keyed
from eventstore.driver import CONNECTION_LOST, driver_pool
from eventstore.failures import append_failure, lost_race
from eventstore.idempotency_purge import PURGE
from eventstore.positions import ORIGIN, Position
from eventstore.records import (
    AppendResult,
    StoredEvent,
    StoreUnavailable,
    StreamAppend,
    WrongExpectedVersion,
)
from eventstore.serialization import UPCASTING, Upcasting
from eventstore.snapshot_sql import DROP_ALL, DROP_ONE, LOAD_LATEST, SAVE, save_params, split_rows
from eventstore.statements import (
    APPEND_BATCH_FAST,
    CURRENT_VERSIONS,
    NOTIFY,
    READ_ALL_FAST,
    READ_BY_POSITION_FAST,
    READ_STREAM_FAST,
    Statement,
    append_results,
    batch_params,
    row_to_event,
    statement_for,
)

# Called after commit with what was appended, the newest position and the time it took.
AppendListener = Callable[[Sequence[StreamAppend], Position, float], None]

_UNAVAILABLE = (
    *CONNECTION_LOST,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn lost connections and unreachable servers into StoreUnavailable."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc, _UNAVAILABLE):
            raise StoreUnavailable(str(exc.orig)) from exc
        raise
    except (*_UNAVAILABLE, sa_exc.TimeoutError) as exc:
        raise StoreUnavailable(str(exc)) from exc


class PostgresEventStore:
    """Event store on one PostgreSQL database."""

    # Applied to every read: readers get each event at its type's current schema version.
    upcasting: Upcasting = UPCASTING

    def __init__(self, engine: AsyncEngine, idempotency_ttl: int = 86400, lock_seconds: int = 30):
        self.engine = engine
        self._driver = driver_pool(engine)
        self._ttl, self._lock_seconds = idempotency_ttl, lock_seconds
        self._listeners: list[AppendListener] = []
        # A batch takes a key once: one statement cannot take the same record twice.
        self._group: GroupCommit[Keyed | None] = GroupCommit(
            self._append_alone,
            self._append_together,
            lost_race,
            distinct=lambda response: response and (response.actor, response.key),
        )
        # Claims too go out together while others are in flight: distinct keys only, since one
        # statement may take a record once.
        self._claims = _ClaimBatcher(self._claim_one, self._claim_together, lost_race)

    def on_appended(self, listener: AppendListener) -> None:
        """Call `listener(streams, last position, seconds)` after every committed append."""
        self._listeners.append(listener)

    async def append(
        self, *streams: StreamAppend, completion: Completion | None = None
    ) -> list[AppendResult]:
        """Append to each stream at its expected version, all in one transaction, or nothing.

        A stream given no events is only checked: the append happens if it is at that version.
        """
        if len({s.stream_id for s in streams}) != len(streams):  # before it can join a batch
            raise ValueError("each stream may appear once per append")
        started = time.perf_counter()
        async with translate_errors():
            try:
                results = await self._append(streams, completion)
            except Exception as exc:
                failure = append_failure(exc, streams)
                if failure is exc:
                    raise
                raise failure from exc
        last, elapsed = max(r.position for r in results), time.perf_counter() - started
        for listener in self._listeners:
            listener(streams, last, elapsed)
        return results

    async def _append(
        self, streams: tuple[StreamAppend, ...], completion: Completion | None
    ) -> list[AppendResult]:
        """The append statement, alone or in a batch, taking its key and storing its answer if
        it has them; in a transaction only when the statement itself cannot."""
        response = None if completion is None else keyed(streams, completion)
        if completion is not None and response is None:
            return await self._append_claimed(streams, completion)
        try:
            positions = await self._group.append(streams, response)
        except _KeyTaken:
            assert response is not None  # only a keyed append can find its key taken
            request = IdempotencyKey(response.actor, response.key, response.request_hash)
            raise AlreadyAnswered(await idempotency.answered(self._driver.fetch, request)) from None
        if not positions:  # the version check refused: find out which stream
            await self._raise_conflict(self._driver.fetch, streams)
        return append_results(streams, positions)

    async def _append_claimed(
        self, streams: tuple[StreamAppend, ...], completion: Completion
    ) -> list[AppendResult]:
        """The append and its answer in a transaction, under a claim taken first if need be
        (and released if the append fails, so that the key may be used again)."""
        claim = completion.claim
        if isinstance(claim, IdempotencyClaim):
            return await self._driver.transaction(self._completing(streams, claim, completion))
        claimed = await self.claim_idempotency(claim.actor, claim.key, claim.request_hash)
        if not isinstance(claimed, IdempotencyClaim):
            raise AlreadyAnswered(claimed)
        try:
            return await self._driver.transaction(self._completing(streams, claimed, completion))
        except BaseException:
            with contextlib.suppress(StoreUnavailable):  # else its lock simply runs out
                await idempotency.release(self._driver.fetch, claimed)
            raise

    def _completing(
        self, streams: tuple[StreamAppend, ...], claim: IdempotencyClaim, completion: Completion
    ) -> Callable[[asyncpg.Connection], Awaitable[list[AppendResult]]]:
        """The work of an append whose response commits with it (a transaction's body)."""
        statement, params = statement_for(streams)

        async def work(conn: asyncpg.Connection) -> list[AppendResult]:
            rows = await conn.fetch(statement.sql, *statement.args(params))
            if not rows:  # the version check refused: find out which stream, to say so
                await self._raise_conflict(conn.fetch, streams)
            results = append_results(streams, [Position(r["txid"], r["position"]) for r in rows])
            await idempotency.complete(conn.fetch, claim, completion.respond(results))
            return results

        return work

    async def _append_alone(
        self, streams: tuple[StreamAppend, ...], response: Keyed | None
    ) -> list[Position]:
        if response is None:
            rows = await self._fetch(*statement_for(streams))
            return [Position(row["txid"], row["position"]) for row in rows]
        outcome = (await self._append_together([(streams, response)]))[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _append_together(
        self, jobs: Sequence[tuple[tuple[StreamAppend, ...], Keyed | None]]
    ) -> list[list[Position] | Exception]:
        params, owners = batch_params([streams for streams, _ in jobs])
        responses = [(n, response) for n, (_, response) in enumerate(jobs) if response]
        statement = APPEND_BATCH_FAST
        if responses:
            statement, params = BATCH_COMPLETING, params | batch_keys(responses, self._ttl)
        rows = await self._fetch(statement, params)
        positions: list[list[Position]] = [[] for _ in jobs]
        # By position, so each append's events stay in version order.
        for row in sorted((r for r in rows if r["event_id"]), key=lambda r: r["position"]):
            positions[owners[row["event_id"]]].append(Position(row["txid"], row["position"]))
        outcomes: list[list[Position] | Exception] = list(positions)
        for row in rows:
            if row["event_id"] is None and not row["taken"]:  # checks passed, key not free
                outcomes[row["item"]] = _KeyTaken()
        return outcomes

    @staticmethod
    async def _raise_conflict(fetch: idempotency.Fetch, streams: tuple[StreamAppend, ...]) -> None:
        ids = [s.stream_id for s in streams]
        current = {row["stream_id"]: row["version"] for row in await fetch(CURRENT_VERSIONS, ids)}
        for stream in streams:
            actual = current.get(stream.stream_id, 0)
            if actual != stream.expected_version:
                raise WrongExpectedVersion(stream.stream_id, stream.expected_version, actual)
        raise WrongExpectedVersion(streams[0].stream_id, streams[0].expected_version)

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        """A stream's events from `from_version` on, in version order."""
        params = {"stream_id": stream_id, "from_version": from_version, "limit": limit}
        async with translate_errors():
            rows = await self._fetch(READ_STREAM_FAST, params)
        return self.upcasting.events([row_to_event(row) for row in rows])

    async def read_all(self, after: Position | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Committed events after `after`, in commit order, never skipping a late commit."""
        after = after or ORIGIN
        params = {"txid": str(after.transaction_id), "position": after.position, "limit": limit}
        async with translate_errors():
            rows = await self._fetch(READ_ALL_FAST, params)
        return self.upcasting.events([row_to_event(row) for row in rows])

    async def read_by_position(
        self, upto: Position, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """The events up to `upto` in commit order, in position order (the primary key's)."""
        params = {
            "after": after,
            "txid": str(upto.transaction_id),
            "position": upto.position,
            "limit": limit,
        }
        async with translate_errors():
            rows = await self._fetch(READ_BY_POSITION_FAST, params)
        return self.upcasting.events([row_to_event(row) for row in rows])

    async def load_latest(self, stream_id: UUID) -> tuple[SnapshotRecord | None, list[StoredEvent]]:
        """The stream's snapshot, if any, and the events after it (one round trip)."""
        async with translate_errors():
            rows = await self._fetch(LOAD_LATEST, {"stream_id": stream_id})
        record, events = split_rows(rows)
        return record, self.upcasting.events(events)

    async def save_snapshot(self, record: SnapshotRecord) -> None:
        """Keep `record` unless a snapshot of a later version is kept already."""
        async with translate_errors():
            await self._fetch(SAVE, save_params(record))

    async def drop_snapshots(self, stream_id: UUID | None = None) -> int:
        """Delete one stream's snapshot, or all; how many were deleted."""
        statement = DROP_ALL if stream_id is None else DROP_ONE
        async with translate_errors():
            rows = await self._fetch(statement, {"stream_id": stream_id})
        return int(rows[0][0])

    async def _fetch(self, statement: Statement, params: dict[str, Any]) -> list[Any]:
        """One autocommit statement on the engine's DriverPool (the hot paths skip SQLAlchemy)."""
        return await self._driver.fetch(statement.sql, *statement.args(params))

    async def notify(self, channel: str, payload: str) -> None:
        """`NOTIFY channel, payload` on its own (LISTENers hear it at once: no transaction)."""
        async with translate_errors():
            await self._fetch(NOTIFY, {"channel": channel, "payload": payload})

    async def purge_idempotency(self, limit: int) -> int:
        """Delete at most `limit` expired idempotency records nobody holds; how many went."""
        async with translate_errors():
            return len(await self._driver.fetch(PURGE, limit))

    async def claim_idempotency(
        self, actor: str, key: str, request_hash: str
    ) -> IdempotencyClaim | StoredResponse:
        """Own `key` (a claim) or get the stored response; raise IdempotencyConflict otherwise."""
        async with translate_errors():
            return await self._claims.submit(IdempotencyKey(actor, key, request_hash))

    async def _claim_one(self, request: IdempotencyKey) -> idempotency.Claimed:
        return await idempotency.claim(
            self._driver.fetch,
            request.actor,
            request.key,
            request.request_hash,
            ttl=self._ttl,
            lock_seconds=self._lock_seconds,
        )

    async def _claim_together(
        self, requests: Sequence[IdempotencyKey]
    ) -> list[idempotency.Claimed | Exception]:
        return await idempotency.claim_many(
            self._driver.fetch, requests, ttl=self._ttl, lock_seconds=self._lock_seconds
        )

    async def complete_idempotency(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        """Store the response of a claimed request that appended nothing."""
        async with translate_errors():
            await idempotency.complete(self._driver.fetch, claim, response)

    async def release_idempotency(self, claim: IdempotencyClaim) -> None:
        """Forget a claim whose request failed, so the client may retry with the same key."""
        async with translate_errors():
            await idempotency.release(self._driver.fetch, claim)


class _KeyTaken(Exception):
    """A keyed append inserted nothing: its key was not free."""


class _ClaimBatcher(Batcher[IdempotencyKey, idempotency.Claimed]):
    """Claims in batches of distinct keys."""

    def admission(self) -> Callable[[IdempotencyKey], bool]:
        """A key already in the batch waits for the next one."""
        keys: set[tuple[str, str]] = set()

        def admit(request: IdempotencyKey) -> bool:
            key = (request.actor, request.key)
            if key in keys:
                return False
            keys.add(key)
            return True

        return admit
