"""The read-model client: bounded `$in` lookups by `_id`; batch work outlasts a server's pause."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.mongo import IDS_PER_QUERY, PATIENT_MONITOR_MS, create_mongo_client, find_by_ids
from core.settings import Settings
from workers.bootstrap import read_side


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


async def test_batch_work_lets_the_server_pause_where_requests_fail_fast(
    read_settings: Settings,
) -> None:
    # The monitor checks the server with the connect timeout; one that times out cancels every
    # query in flight, an audit's hour-long scan included.
    quick = create_mongo_client(read_settings)
    assert quick.options.pool_options.connect_timeout == 3
    async with read_side(read_settings, "test-batch") as side:
        timeouts = side.db.client.options
        assert timeouts.pool_options.connect_timeout == PATIENT_MONITOR_MS / 1000
        assert timeouts.server_selection_timeout == 3  # an unreachable server still fails fast
    await quick.close()
