"""MongoDB client factory (PyMongo's async API)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from core.settings import Settings

Document = dict[str, Any]


def create_mongo_client(
    settings: Settings, app_name: str = "ordertrail"
) -> AsyncMongoClient[Document]:
    """A client with short timeouts, so an unreachable server fails fast (503), not hangs."""
    return AsyncMongoClient(
        settings.mongodb_url,
        appname=app_name,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        tz_aware=True,
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    """The read-model database."""
    return client[settings.mongodb_db]
