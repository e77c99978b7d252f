"""MongoDB client factory (PyMongo's async API)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from core.settings import Settings

Document = dict[str, Any]


# How long a batch job's client lets the server take to answer its monitor (see below).
PATIENT_MONITOR_MS = 60_000


def create_mongo_client(
    settings: Settings,
    app_name: str = "ordertrail",
    retry_writes: bool = True,
    patient: bool = False,
) -> AsyncMongoClient[Document]:
    """A client with short timeouts, so an unreachable server fails fast (503), not hangs.

    `retry_writes=False` is for writers whose every write is idempotent or guarded on its own
    (the subscribers): a retryable write makes the server keep a record of each write's reply
    for half an hour, work that buys them nothing, since they re-run a failed batch anyway.

    `patient=True` is for batch work (ops commands, jobs). The driver's monitor checks the server
    with the connect timeout, and a check that times out cancels every query in flight. A scan
    of a million documents is one long query, and the server may pause meanwhile (the test
    server's garbage collection did, past 3 s, and an hour of `audit --all` ended with "operation
    cancelled"). An unreachable server still fails within the 3 s server selection timeout.
    """
    return AsyncMongoClient(
        settings.mongodb_url,
        appname=app_name,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=PATIENT_MONITOR_MS if patient else 3000,
        tz_aware=True,
        retryWrites=retry_writes,
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    """The read-model database."""
    return client[settings.mongodb_db]


# Keys per `$in` lookup. A server's cost of matching one `$in` can grow with the square of its
# length: the MongoDB-wire server the tests and benchmarks run took 9 ms for 100 `_id`s and 2.3 s
# for 2,000, so a batch's lookup in one query made a rebuild at a million events crawl. A hundred
# at a time keeps it linear there, and is still one index walk per query on mongod.
IDS_PER_QUERY = 100


async def find_by_ids(
    collection: AsyncCollection[Any],
    ids: Iterable[Any],
    fields: Mapping[str, Any] | None = None,
) -> dict[Any, Any]:
    """The documents with these `_id`s (those that exist), by `_id`, a bounded `$in` per query."""
    keys = list(ids)

    async def chunk(start: int) -> list[Any]:
        part = keys[start : start + IDS_PER_QUERY]
        return [doc async for doc in collection.find({"_id": {"$in": part}}, fields)]

    chunks = await asyncio.gather(*(chunk(s) for s in range(0, len(keys), IDS_PER_QUERY)))
    return {doc["_id"]: doc for docs in chunks for doc in docs}
