"""A rebuild loads its generation first and builds the indexes after, before the swap."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

import workers.rebuild as rebuild_module
from eventstore.postgres import PostgresEventStore
from projections.aliases import Aliases
from projections.registry import INDEXES, ensure_indexes
from tests.ops.helpers import Db, seed_catalog
from workers.bootstrap import read_side_over
from workers.rebuild import rebuild


def index_keys(info: Mapping[str, dict[str, object]]) -> set[tuple[tuple[str, int], ...]]:
    """The key patterns of a collection's secondary indexes."""
    return {tuple(index["key"]) for name, index in info.items() if name != "_id_"}  # type: ignore[arg-type]


def unique_keys(collection: str) -> set[tuple[tuple[str, int], ...]]:
    """The key patterns of a collection's unique indexes."""
    models = [m.document for m in INDEXES[collection] if m.document.get("unique")]
    return {tuple(model["key"].items()) for model in models}


@pytest.mark.parametrize(("projection", "documents"), [("products", 40), ("audit_log", 160)])
async def test_indexes_are_built_over_the_loaded_generation_and_in_place_at_the_swap(
    engine: AsyncEngine,
    pg_store: PostgresEventStore,
    mongo_db: Db,
    clean_db: None,
    monkeypatch: pytest.MonkeyPatch,
    projection: str,
    documents: int,
) -> None:
    """Every event is loaded before the indexes exist; events appended while they are built
    still reach the generation, and readers find every index once it is live."""
    await seed_catalog(pg_store, 40, "idx")  # 160 events
    loaded: list[int] = []

    async def indexes_after_the_load(
        db: AsyncDatabase[dict[str, object]],
        name: str,
        names: Mapping[str, str],
        unique_only: bool = False,
    ) -> None:
        if unique_only:  # before the load: those that refuse a write
            await ensure_indexes(db, name, names, unique_only=True)  # type: ignore[arg-type]
            return
        shadow = db[names[projection]]
        assert index_keys(await shadow.index_information()) == unique_keys(projection)
        loaded.append(await shadow.count_documents({}))
        await seed_catalog(pg_store, 5, "late")  # committed while the indexes are built
        await ensure_indexes(db, name, names)  # type: ignore[arg-type]

    monkeypatch.setattr(rebuild_module, "ensure_indexes", indexes_after_the_load)
    result = await rebuild(projection, read_side_over(engine, mongo_db), batch_size=50)

    assert loaded == [documents]
    assert result.events == 180
    _, names = await Aliases(mongo_db).live(projection)
    live = mongo_db[names[projection]]
    late = 5 if projection == "products" else 20
    assert await live.count_documents({}) == documents + late
    expected = {tuple(model.document["key"].items()) for model in INDEXES[projection]}
    assert index_keys(await live.index_information()) == expected
