"""Load an aggregate from its stream, let the domain decide, append the new events.

Shared by the command API and the workers' process manager, so both get the same optimistic
concurrency, retries and idempotent completion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from core.retry import Backoff, retry
from domain.errors import DomainError
from domain.registry import stream_type_of
from eventstore.base import (
    AlreadyAnswered,
    Completion,
    EventStore,
    IdempotencyClaim,
    IdempotencyKey,
    StoredResponse,
)
from eventstore.cache import AggregateCache, Loaded
from eventstore.loading import StreamLoader
from eventstore.positions import Position
from eventstore.records import (
    AppendAborted,
    AppendResult,
    StoreUnavailable,
    StreamAppend,
    WrongExpectedVersion,
)
from eventstore.serialization import EventCodec
from eventstore.snapshots import SnapshotWriter

A = TypeVar("A", bound=Aggregate)

# Another writer appended first, or the append was a deadlock victim: nothing was written, so
# the command is decided again on the stream as stored.
LOST_RACES = (WrongExpectedVersion, AppendAborted)
# Fully jittered (8 ms, 16 ms, ... at most), so racing writers stop colliding in lockstep.
RACE_BACKOFF = Backoff(base=0.008, jitter=1.0)


class PreconditionFailed(Exception):
    """The stream is not at the version the client named in If-Match."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(f"expected version {expected}, stream is at {actual}")


class ConcurrencyConflict(Exception):
    """Concurrent writers kept winning; the command was retried and gave up."""


class AssumptionFailed(Exception):
    """A stream the command relied on (Context.unchanged) moved on: decide again from reads."""


@dataclass(frozen=True)
class Outcome:
    """What a command did to its stream."""

    stream_id: UUID
    version: int
    position: Position | None
    created: bool


@dataclass(frozen=True)
class Context:
    """How to run one command: metadata to record, optional If-Match and idempotent completion."""

    metadata: dict[str, Any] = field(default_factory=dict)
    expected_version: int | None = None
    # The request's idempotency key, claimed by the append itself (or a claim held already).
    claim: IdempotencyClaim | IdempotencyKey | None = None
    respond: Callable[[Outcome], StoredResponse] | None = None
    # `respond` uses the outcome's position only through its token (see Completion.by_token).
    respond_by_token: bool = False
    # Other streams the decision was made from, at the versions it saw: the append checks them
    # in the same statement, and raises AssumptionFailed if any has moved on.
    unchanged: Mapping[UUID, int] = field(default_factory=dict)


class Repository:
    """Aggregates in and out of an event store.

    It keeps the aggregates it last saved or read (an LRU of `cache_size`), so a command on a
    stream this process wrote last needs no read: one round trip, the append; and a read of a
    cached stream fetches only the events after the cached version. The append's expected
    version proves the cached state is the stored one; if another process wrote in between, the
    append fails and the command is re-run on the stream as stored. A cached decision that would
    not append (a refusal, a no-op) is never trusted: it is re-made on the stored state.

    With `snapshots`, a stream that is not cached is loaded from its latest snapshot and the
    events after it (one round trip), and a snapshot is offered whenever an append crosses a
    multiple of the interval or a cold load folded that many events.
    """

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec | None = None,
        retries: int = 5,
        cache_size: int = 10_000,
        on_retry: Callable[[str], None] = lambda stream_type: None,
        snapshots: SnapshotWriter | None = None,
    ):
        self.store, self.codec, self.retries = store, codec or EventCodec(), retries
        self.snapshots = snapshots
        self._loader = StreamLoader(store, self.codec, snapshots)
        # Told the stream type each time a command is re-run because another writer appended
        # to its stream first (a metric: races show up before they turn into 409s).
        self.on_retry = on_retry
        self._cache = AggregateCache(cache_size)

    async def exists(self, cls: type[A], stream_id: UUID) -> bool:
        """Whether the aggregate exists (streams are never deleted, so a yes is remembered)."""
        if self._cache.known_to_exist(stream_id) or self._cache.holds(stream_id):
            return True
        if await self.get(cls, stream_id) is None:
            return False
        self._cache.mark_existing(stream_id)
        return True

    async def get(self, cls: type[A], stream_id: UUID) -> Loaded[A] | None:
        """The aggregate as stored now, or None; for reading: change it only through execute.

        A cached aggregate is brought up to date with the events after its version (usually
        none) instead of being rebuilt from the whole stream, and what was read is cached.
        """
        # Out of the cache while the read is in flight, so no command decides on it meanwhile.
        loaded = await self._load(cls, stream_id, self._cache.take(cls, stream_id))
        if loaded is not None and not self._cache.holds(stream_id):
            self._cache.keep(stream_id, loaded)
        return loaded

    async def _load(
        self, cls: type[A], stream_id: UUID, base: Loaded[A] | None = None
    ) -> Loaded[A] | None:
        """The aggregate rebuilt from its stream, or `base` with the events after it applied."""
        return await self._loader.load(cls, stream_id, base)

    async def execute(
        self,
        cls: type[A],
        stream_id: UUID,
        decide: Callable[[A | None], A | None],
        context: Context | None = None,
        *,
        likely_new: bool = False,
    ) -> Outcome:
        """Run `decide` on the current state and append its events, retrying lost races.

        `likely_new` (a command that creates its stream, such as registering a SKU) first
        appends at version 0 without reading: the append's version check says whether the
        stream was indeed empty, and only if it was not is the command re-run on the stream.
        """
        context = context or Context()
        cached = self._cache.take(cls, stream_id)
        if cached and (outcome := await self._unread(cls, stream_id, decide, context, cached)):
            return outcome
        new = likely_new and not self._cache.known_to_exist(stream_id)
        if new and (outcome := await self._unread(cls, stream_id, decide, context, None)):
            return outcome
        stream_type = stream_type_of(cls)
        return await retry(
            lambda: self._decide_and_save(cls, stream_id, decide, context),
            attempts=self.retries + 1,
            backoff=RACE_BACKOFF,
            retry_on=lambda error: isinstance(error, LOST_RACES),
            on_retry=lambda _attempt, _error: self.on_retry(stream_type),
            exhausted=lambda _error: ConcurrencyConflict(
                f"stream {stream_id} kept changing; gave up after retries"
            ),
        )

    async def _decide_and_save(
        self,
        cls: type[A],
        stream_id: UUID,
        decide: Callable[[A | None], A | None],
        context: Context,
    ) -> Outcome:
        """One attempt on the stream as stored; raises LOST_RACES if another writer won."""
        loaded = await self._load(cls, stream_id)  # decide() changes it: not the cached one
        version = loaded.aggregate.version if loaded else 0
        if context.expected_version not in (None, version):
            raise PreconditionFailed(context.expected_version, version)
        aggregate = decide(loaded.aggregate if loaded else None)
        try:
            return await self._save(cls, stream_id, version, aggregate, loaded, context)
        except WrongExpectedVersion:
            if context.expected_version is not None:
                raise PreconditionFailed(context.expected_version, version) from None
            raise

    async def _unread(
        self,
        cls: type[A],
        stream_id: UUID,
        decide: Callable[[A | None], A | None],
        context: Context,
        assumed: Loaded[A] | None,
    ) -> Outcome | None:
        """The command on an assumed state (None: an empty stream), the append judging it.

        None whenever the assumption may be what is wrong: an If-Match or a refusal is judged
        on the stored state, and a refused append means the stream is not as assumed.
        """
        version = assumed.aggregate.version if assumed else 0
        if context.expected_version not in (None, version):
            return None
        try:
            aggregate = decide(assumed.aggregate if assumed else None)
        except DomainError:
            return None
        if aggregate is None or not aggregate.pending_events:
            return None
        try:
            return await self._save(cls, stream_id, version, aggregate, assumed, context)
        except WrongExpectedVersion:
            if assumed is None:  # the stream exists after all: remember that
                self._cache.mark_existing(stream_id)
            else:  # another writer appended since it was cached
                self.on_retry(stream_type_of(cls))
            return None
        except AppendAborted:
            return None  # nothing was written: the retrying path runs it again

    async def _save(
        self,
        cls: type[A],
        stream_id: UUID,
        version: int,
        aggregate: A | None,
        loaded: Loaded[A] | None,
        context: Context,
    ) -> Outcome:
        pending = aggregate.collect_events() if aggregate is not None else []
        if not pending:  # nothing to do: answer with the stream as it is
            outcome = Outcome(stream_id, version, loaded.position if loaded else None, False)
            if context.claim is not None and context.respond is not None:
                await self._answer_unchanged(context.claim, context.respond(outcome))
            return outcome
        append = StreamAppend(
            stream_id,
            stream_type_of(cls),
            version,
            [self.codec.encode(event) for event in pending],
            context.metadata,
        )
        checks = [StreamAppend(sid, "", v, []) for sid, v in context.unchanged.items()]
        try:
            results = await self.store.append(
                append, *checks, completion=_completion(context, version)
            )
        except WrongExpectedVersion as exc:
            if exc.stream_id in context.unchanged:
                raise AssumptionFailed(f"stream {exc.stream_id} moved on") from exc
            raise
        if aggregate is not None:
            self._cache.keep(stream_id, Loaded(aggregate, results[0].position))
            if self.snapshots is not None and self.snapshots.crossed(version, results[0].version):
                self.snapshots.offer(aggregate, results[0].position)
        return _outcome(results[0], version)

    async def _answer_unchanged(
        self, claim: IdempotencyClaim | IdempotencyKey, response: StoredResponse
    ) -> None:
        """Store the answer of a keyed command that appended nothing, claiming its key first."""
        if not isinstance(claim, IdempotencyKey):
            await self.store.complete_idempotency(claim, response)
            return
        taken = await self.store.claim_idempotency(claim.actor, claim.key, claim.request_hash)
        if not isinstance(taken, IdempotencyClaim):
            raise AlreadyAnswered(taken)
        try:
            await self.store.complete_idempotency(taken, response)
        except BaseException:
            with contextlib.suppress(StoreUnavailable):  # else its lock simply runs out
                await self.store.release_idempotency(taken)
            raise

    def peek(self, cls: type[A], stream_id: UUID) -> Loaded[A] | None:
        """The cached aggregate, without I/O (for reading now, before any await), or None.

        It may be behind the store: decide from it only with Context.unchanged naming its
        version, so that the append proves it current.
        """
        return self._cache.peek(cls, stream_id)


def _outcome(result: AppendResult, version_before: int) -> Outcome:
    return Outcome(result.stream_id, result.version, result.position, version_before == 0)


def _completion(context: Context, version_before: int) -> Completion | None:
    if context.claim is None or context.respond is None:
        return None
    respond = context.respond
    return Completion(
        context.claim,
        lambda results: respond(_outcome(results[0], version_before)),
        by_token=context.respond_by_token,
    )
