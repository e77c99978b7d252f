"""Table shapes as PostgreSQL itself describes them, to compare a migrated schema with metadata.

Both sides are read from the server's catalogue (format_type, pg_get_expr, pg_get_constraintdef,
pg_get_indexdef), so a type, default or index is compared in PostgreSQL's own normal form rather
than in whatever spelling the migration or the metadata happened to use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = sa.text(
    """
    SELECT c.relname AS table_name, a.attname AS name,
           format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
           pg_get_expr(d.adbin, d.adrelid) AS default,
           NULLIF(a.attidentity::text, '') AS identity,
           NULLIF(a.attgenerated::text, '') AS generated
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = :schema AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
    """
)

# Primary keys, unique, check and foreign-key constraints, by name.
_CONSTRAINTS = sa.text(
    """
    SELECT c.relname AS table_name, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema
    """
)

_INDEXES = sa.text(
    """
    SELECT c.relname AS table_name, i.relname AS name, pg_get_indexdef(i.oid) AS definition
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema
    """
)

_SEARCH_PATH = sa.text("SELECT set_config('search_path', :schema, true)")
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}


@dataclass
class TableShape:
    """One table: columns (name -> description), constraints and indexes (name -> definition)."""

    columns: dict[str, str] = field(default_factory=dict)
    constraints: dict[str, str] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)


Shapes = dict[str, TableShape]


async def shapes(conn: AsyncConnection, schema: str) -> Shapes:
    """Every table of `schema`, as the catalogue describes it."""
    found: Shapes = {}
    # Only this schema on the path, so a foreign key's definition names its table unqualified.
    await conn.execute(_SEARCH_PATH, {"schema": schema})
    for row in await conn.execute(_COLUMNS, {"schema": schema}):
        described = f"{row.type} {'NOT NULL' if row.not_null else 'NULL'}"
        described += f" DEFAULT {row.default}" if row.default is not None else ""
        described += f" IDENTITY {_IDENTITY[row.identity]}" if row.identity else ""
        described += " GENERATED STORED" if row.generated else ""  # its expression is the DEFAULT
        found.setdefault(row.table_name, TableShape()).columns[row.name] = described
    for row in await conn.execute(_CONSTRAINTS, {"schema": schema}):
        found[row.table_name].constraints[row.name] = row.definition
    for row in await conn.execute(_INDEXES, {"schema": schema}):
        # Index definitions name the table with its schema: drop it, so two schemas compare.
        definition = row.definition.replace(f" ON {schema}.", " ON ")
        found[row.table_name].indexes[row.name] = definition
    return found


async def create_in_schema(conn: AsyncConnection, metadata: sa.MetaData, schema: str) -> None:
    """Create `metadata`'s tables, indexes and constraints in a new schema `schema`."""
    await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    translated = await conn.execution_options(schema_translate_map={None: schema})
    await translated.run_sync(metadata.create_all)


def differences(migrated: Shapes, declared: Shapes) -> list[str]:
    """Every way `declared` (the metadata) differs from `migrated` (the migrations), one a line."""
    found = _keyed("table", set(migrated), set(declared))
    for name in sorted(set(migrated) & set(declared)):
        old, new = migrated[name], declared[name]
        found += _compared(f"{name} column", old.columns, new.columns)
        found += _compared(f"{name} constraint", old.constraints, new.constraints)
        found += _compared(f"{name} index", old.indexes, new.indexes)
    return found


def _keyed(kind: str, migrated: set[str], declared: set[str]) -> list[str]:
    only_migrated = [f"{kind} {name}: only in the migrations" for name in migrated - declared]
    only_declared = [f"{kind} {name}: only in the metadata" for name in declared - migrated]
    return sorted(only_migrated + only_declared)


def _compared(kind: str, migrated: dict[str, str], declared: dict[str, str]) -> list[str]:
    found = _keyed(kind, set(migrated), set(declared))
    for name in sorted(set(migrated) & set(declared)):
        if migrated[name] != declared[name]:
            both = f"migrations {migrated[name]!r}, metadata {declared[name]!r}"
            found.append(f"{kind} {name}: {both}")
    return found
