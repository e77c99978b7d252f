"""MongoDB client factory (PyMongo's async API)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from core.settings import Settings

Document = dict[str, Any]


def create_mongo_client(
    settings: Settings, app_name: str = "ordertrail", retry_writes: bool = True
) -> AsyncMongoClient[Document]:
    """A client with short timeouts, so an unreachable server fails fast (503), not hangs.

    `retry_writes=False` is for writers whose every write is idempotent or guarded on its own
    (the subscribers): a retryable write makes the server keep a record of each write's reply
    for half an hour, work that buys them nothing, since they re-run a failed batch anyway.
    """
    return AsyncMongoClient(
        settings.mongodb_url,
        appname=app_name,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        tz_aware=True,
        retryWrites=retry_writes,
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    """The read-model database."""
    return client[settings.mongodb_db]
