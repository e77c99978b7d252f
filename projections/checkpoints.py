"""Where each subscriber is in the event store, and the events it had to park."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.documents import Document

CHECKPOINTS, PARKED = "checkpoints", "parked_events"


class Checkpoints:
    """Checkpoints in MongoDB: {_id: name, token, events_seen, updated_at, last_error}.

    Saves are coalesced: one wake-up moves every subscriber of a worker at about the same time,
    and the saves made while one write is in flight go out together in the next bulk write
    (one round trip instead of one per subscriber; the first save never waits).
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[CHECKPOINTS]
        self._pending: list[tuple[UpdateOne, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def load(self, name: str) -> Position | None:
        """The position after which `name` continues (None: from the start)."""
        doc = await self.collection.find_one({"_id": name})
        return Position.parse(doc["token"]) if doc and doc.get("token") else None

    async def save(self, name: str, position: Position, events_seen: int) -> None:
        """Advance `name` to `position` (only forwards: a stale writer cannot move it back)."""
        update = {
            "$max": {"token": position.token},
            "$inc": {"events_seen": events_seen},
            "$set": {"updated_at": datetime.now(UTC)},
        }
        await self._queue(name, update)

    async def beat(self, name: str, worker: str) -> None:
        """The owner `worker` is alive and its last step succeeded: no failure stands."""
        update = {"$set": {"alive_at": datetime.now(UTC), "alive_worker": worker}}
        await self._queue(name, update | {"$unset": {"failure": ""}})

    async def record_failure(self, name: str, failure: Document, worker: str) -> None:
        """`worker` failed to run `name`: why, since when, how many attempts (for `status`)."""
        failure = {**failure, "worker": worker, "at": datetime.now(UTC)}
        fields = {"failure": failure, "last_error": failure["last_error"]}
        await self._queue(name, {"$set": fields | {"error_at": failure["at"]}})

    async def _queue(self, name: str, update: Document) -> None:
        """Send one update in the next coalesced bulk write, and wait until it is written."""
        request = UpdateOne({"_id": name}, update, upsert=True)
        done = asyncio.get_running_loop().create_future()
        self._pending.append((request, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        """Write what is pending, then what was saved meanwhile, until nothing is left."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.collection.bulk_write([update for update, _ in batch], ordered=False)
            except Exception as exc:
                outcome: BaseException | None = exc
            else:
                outcome = None
            for _, done in batch:
                if done.done():  # its saver was cancelled; the write happened all the same
                    continue
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)

    async def record_error(self, name: str, error: str | None) -> None:
        """Remember the last error of `name` (None clears it)."""
        await self.collection.update_one(
            {"_id": name},
            {"$set": {"last_error": error, "error_at": datetime.now(UTC)}},
            upsert=True,
        )

    async def request_handoff(self, name: str, seconds: float, taker: str) -> None:
        """Ask owners of `name` to let go for `seconds` (renewed while `taker` needs it).

        Each taker has its own entry: when a rebuild and a replay overlap, the first to finish
        must not withdraw the other's request (the owner would take the lease straight back).
        """
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        await self.collection.update_one(
            {"_id": name}, {"$set": {f"handoffs.{taker}": until}}, upsert=True
        )

    async def end_handoff(self, name: str, taker: str) -> None:
        """`taker` is done; owners may take `name` again once no other taker waits."""
        await self.collection.update_one({"_id": name}, {"$unset": {f"handoffs.{taker}": ""}})

    async def handoff_requested(self, name: str) -> bool:
        """Whether someone (a rebuild, a replay) asked the owners of `name` to let go."""
        doc = await self.collection.find_one({"_id": name}, {"handoffs": 1})
        now = datetime.now(UTC)
        return any(_aware(until) > now for until in ((doc or {}).get("handoffs") or {}).values())

    async def move(self, name: str, position: Position | None) -> None:
        """Set where `name` is, forwards or backwards (a rebuild's swap)."""
        token = position.token if position else None
        await self.collection.update_one(
            {"_id": name}, {"$set": {"token": token, "updated_at": datetime.now(UTC)}}, upsert=True
        )

    async def reset(self, name: str) -> None:
        """Forget where `name` was (a rebuild starts from zero)."""
        await self.collection.delete_one({"_id": name})

    async def all(self) -> dict[str, Document]:
        """Every checkpoint document by name."""
        return {doc["_id"]: doc async for doc in self.collection.find({})}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ParkedEvents:
    """Events a subscriber gave up on after retries, with the error, for `retry-parked`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[PARKED]

    async def park(self, name: str, event: StoredEvent, error: str, attempts: int) -> None:
        """Keep `event` aside for subscriber `name`."""
        doc = {
            "projection": name,
            "position": event.token,
            "event_id": str(event.event_id),
            "stream_id": str(event.stream_id),
            "type": event.type,
            "version": event.version,
            "error": error,
            "attempts": attempts,
            "parked_at": datetime.now(UTC),
        }
        await self.collection.replace_one({"_id": f"{name}:{event.token}"}, doc, upsert=True)

    async def adopt(self, name: str, other: str) -> None:
        """`name` now stands for what `other` built: its parked events replace `name`'s."""
        await self.collection.delete_many({"projection": name})
        await self.collection.update_many({"projection": other}, {"$set": {"projection": name}})

    async def remove(self, name: str, token: str) -> None:
        """Forget a parked event (it was applied after all)."""
        await self.collection.delete_many({"projection": name, "position": token})

    async def holds(self, name: str, token: str) -> bool:
        """Whether `name` has parked the event at `token` already."""
        return await self.collection.count_documents({"_id": f"{name}:{token}"}, limit=1) > 0

    async def skipped(self, name: str) -> list[Document]:
        """The events of `name` an operator chose to skip, oldest first."""
        query = {"projection": name, "skipped": {"$exists": True}}
        return [doc async for doc in self.collection.find(query).sort("position", 1)]

    async def count(self, name: str) -> int:
        """How many events `name` has parked (and not skipped)."""
        return await self.collection.count_documents(_waiting(name))

    async def list(self, name: str, limit: int = 0) -> list[Document]:
        """The parked events of `name` still waiting for a retry or a skip, oldest first."""
        found = self.collection.find(_waiting(name)).sort("position", 1).limit(limit)
        return [doc async for doc in found]

    async def skip(self, name: str, token: str, actor: str, reason: str) -> bool:
        """Give up on a parked event for good: it stays listed, as skipped, and audits stop
        calling it a hole. False if `name` has no such parked event waiting."""
        skipped = {"at": datetime.now(UTC), "by": actor, "reason": reason}
        done = await self.collection.update_one(
            _waiting(name) | {"position": token}, {"$set": {"skipped": skipped}}
        )
        return done.modified_count == 1


def _waiting(name: str) -> Document:
    """The query for `name`'s parked events not skipped."""
    return {"projection": name, "skipped": {"$exists": False}}


async def subscriber_status(
    db: AsyncDatabase[Document], names: Sequence[str]
) -> dict[str, Document]:
    """Per subscriber: where it is, how many events it parked, and its last error."""
    checkpoints, parked = await Checkpoints(db).all(), ParkedEvents(db)
    status = {}
    for name in names:
        doc = checkpoints.get(name, {})
        status[name] = {
            "token": doc.get("token"),
            "events_seen": doc.get("events_seen", 0),
            "updated_at": doc.get("updated_at"),
            "parked": await parked.count(name),
            "last_error": doc.get("last_error"),
            "error_at": doc.get("error_at"),
            "failure": doc.get("failure"),
            "alive_at": doc.get("alive_at"),
            "alive_worker": doc.get("alive_worker"),
        }
    return status
