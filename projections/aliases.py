"""Which generation of a projection's collections is live: one alias document per projection.

A rebuild fills a new generation of collections, then points the alias at it with a single
document update: readers switch from one complete view to the other, never seeing a half-built
one (a collection rename is not atomic on every MongoDB-wire server, and kills open cursors).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from projections.collections import COLLECTIONS
from projections.documents import Document

ALIASES = "aliases"
Names = dict[str, str]


def generation_names(projection: str, generation: int) -> Names:
    """Physical names of a generation: generation 0 is the plain logical names."""
    if generation == 0:
        return {c: c for c in COLLECTIONS[projection]}
    return {c: f"{c}__g{generation}" for c in COLLECTIONS[projection]}


class Aliases:
    """The alias documents: {_id: projection, generation, names, pending?}."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[ALIASES]

    async def live(self, projection: str) -> tuple[int, Names]:
        """The live generation of a projection and its physical names."""
        doc = await self.collection.find_one({"_id": projection})
        generation = doc["generation"] if doc else 0
        return generation, generation_names(projection, generation)

    async def all_live(self) -> Names:
        """Logical -> physical name of every collection of every projection."""
        names: Names = {}
        async for doc in self.collection.find({}):
            names |= generation_names(doc["_id"], doc["generation"])
        return names

    async def pending(self, projection: str) -> int | None:
        """The generation a rebuild is filling, if one is under way."""
        doc = await self.collection.find_one({"_id": projection})
        return doc.get("pending") if doc else None

    async def begin(self, projection: str) -> int:
        """Reserve the next generation for a rebuild."""
        live, _ = await self.live(projection)
        generation = max(live, await self.pending(projection) or 0) + 1
        await self.collection.update_one(
            {"_id": projection},
            {
                "$set": {"pending": generation, "pending_since": datetime.now(UTC)},
                "$setOnInsert": {"generation": 0},
            },
            upsert=True,
        )
        return generation

    async def swap(self, projection: str, generation: int) -> None:
        """Make `generation` live in one atomic update (remembering when its rebuild began)."""
        doc = await self.collection.find_one({"_id": projection})
        began = doc.get("pending_since") if doc else None
        await self.collection.update_one(
            {"_id": projection},
            {
                "$set": {
                    "generation": generation,
                    "swapped_at": datetime.now(UTC),
                    "rebuild_began_at": began,
                },
                "$unset": {"pending": "", "pending_since": ""},
            },
        )

    async def rebuild_seconds(self, projection: str) -> float | None:
        """How long the live generation took from its reservation to its swap (None: unknown)."""
        doc = await self.collection.find_one({"_id": projection})
        if not doc or doc.get("rebuild_began_at") is None or "swapped_at" not in doc:
            return None
        return float((doc["swapped_at"] - doc["rebuild_began_at"]).total_seconds())

    async def abandon(self, projection: str) -> None:
        """Forget a pending generation."""
        await self.collection.update_one(
            {"_id": projection}, {"$unset": {"pending": "", "pending_since": ""}}
        )
