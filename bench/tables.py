"""Ceiling tables with the `events` table's shape, built from eventstore/schema.py's metadata."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable, ExecutableDDLElement

from eventstore.schema import events


def events_like(name: str) -> list[str]:
    """DDL of a table shaped like `events`: same columns, defaults, constraints and indexes."""
    table = events.to_metadata(sa.MetaData(), name=name)
    # Constraint and index names are per schema: give the copy's their own prefix.
    named: list[sa.Constraint | sa.Index] = [*table.constraints, *table.indexes]
    for item in named:
        if isinstance(item.name, str) and item.name.startswith(f"{events.name}_"):
            item.name = name + item.name.removeprefix(events.name)
    statements: list[ExecutableDDLElement] = [CreateTable(table, if_not_exists=True)]
    statements += [CreateIndex(index, if_not_exists=True) for index in table.indexes]
    dialect = make_url("postgresql+asyncpg://").get_dialect()()  # the dialect the store runs on
    return [str(statement.compile(dialect=dialect)) for statement in statements]
