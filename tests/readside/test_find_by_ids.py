"""Looking documents up by `_id` in bounded `$in` queries."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.mongo import IDS_PER_QUERY, find_by_ids


async def test_more_ids_than_one_query_takes_find_every_document_that_exists(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    collection = mongo_db["lookups"]
    await collection.insert_many([{"_id": f"k{n:04}", "n": n, "x": "y"} for n in range(250)])
    asked = [f"k{n:04}" for n in range(0, 500, 2)]  # half of them exist, over three queries
    assert len(asked) > 2 * IDS_PER_QUERY
    found = await find_by_ids(collection, asked, {"n": 1})
    assert found == {f"k{n:04}": {"_id": f"k{n:04}", "n": n} for n in range(0, 250, 2)}
    assert await find_by_ids(collection, []) == {}
