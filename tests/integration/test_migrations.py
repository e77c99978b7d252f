"""Alembic on a fresh database: up, down and up again; what each revision carries over."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.responses import Response

from command_api.dispatch import CommandAnswer, CommandRunner
from core.auth import Principal
from eventstore.base import IdempotencyConflict
from eventstore.driver import dispose
from eventstore.postgres import PostgresEventStore
from eventstore.repository import Context, Outcome, Repository
from ops.migrate import downgrade, upgrade
from tests.conftest import sqlalchemy_url
from tests.support.servers import in_thread


def tables(dsn: str) -> set[str]:
    """The public tables of a database."""

    async def go() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row["tablename"] for row in rows}
        finally:
            await conn.close()

    return in_thread(lambda: asyncio.run(go()))


def test_upgrade_downgrade_upgrade(scratch_database: str) -> None:
    url = sqlalchemy_url(scratch_database)
    upgrade(url)
    assert {"events", "idempotency_records", "alembic_version"} <= tables(scratch_database)
    downgrade(url, "base")
    assert tables(scratch_database) == {"alembic_version"}
    upgrade(url)
    assert {"events", "idempotency_records"} <= tables(scratch_database)


# A record as revision 0001's command API completed it: the answer in three columns.
POSITION = "00000000000002a5000000000000002a"
ANSWER_BODY = {"id": str(uuid.uuid4()), "version": 1, "position": POSITION}
ANSWER_HEADERS = {"ETag": '"1"', "X-Position": POSITION}
RECORDS_0001 = """
    INSERT INTO idempotency_records (actor, key, request_hash, status, lock_token, locked_until,
        response_status, response_body, response_headers, expires_at)
    VALUES ('alice', 'done', 'hash', 'done', NULL, NULL, 201, $1::jsonb, $2::jsonb,
            now() + interval '1 day'),
           ('alice', 'in-flight', 'hash', 'in_flight', gen_random_uuid(), now() + interval '1 hour',
            NULL, NULL, NULL, now() + interval '1 day')
"""
COLUMNS_0001 = (
    "SELECT response_status, response_body, response_headers FROM idempotency_records "
    "WHERE actor = 'alice' AND key = 'done'"
)


async def not_run(command: object, repo: Repository, context: Context) -> Outcome:
    """A handler a replayed request must never reach."""
    raise AssertionError("a replay ran its command again")


async def replay(url: str, key: str) -> Response:
    """What the command API answers a repeat of alice's `key` (same request hash)."""
    engine = create_async_engine(url)
    try:
        repo = Repository(PostgresEventStore(engine))
        runner = CommandRunner(repo, Principal("alice", frozenset()), {}, key, None, "hash")
        return await runner.run(not_run, object())
    finally:
        await dispose(engine)


async def sql(dsn: str, statement: str, *args: object) -> list[asyncpg.Record]:
    """Rows of one statement (jsonb as text, as asyncpg hands it over by default)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


async def test_a_key_completed_before_0002_replays_the_same_after_it(
    scratch_database: str,
) -> None:
    url = sqlalchemy_url(scratch_database)
    await asyncio.to_thread(upgrade, url, "0001")
    await sql(scratch_database, RECORDS_0001, json.dumps(ANSWER_BODY), json.dumps(ANSWER_HEADERS))
    await asyncio.to_thread(upgrade, url)
    replayed = await replay(url, "done")
    # Revision 0001's command API answered a replay with the three columns as they were.
    before = CommandAnswer(ANSWER_BODY, 201, {**ANSWER_HEADERS, "Idempotent-Replayed": "true"})
    assert replayed.status_code == before.status_code == 201
    assert replayed.body == before.body
    assert replayed.raw_headers == before.raw_headers
    with pytest.raises(IdempotencyConflict, match="in_flight"):  # still in flight, not answered
        await replay(url, "in-flight")


async def test_downgrade_from_0002_splits_the_answer_back(scratch_database: str) -> None:
    url = sqlalchemy_url(scratch_database)
    await asyncio.to_thread(upgrade, url, "0001")
    await sql(scratch_database, RECORDS_0001, json.dumps(ANSWER_BODY), json.dumps(ANSWER_HEADERS))
    await asyncio.to_thread(upgrade, url)
    await asyncio.to_thread(downgrade, url, "0001")
    [row] = await sql(scratch_database, COLUMNS_0001)
    assert row["response_status"] == 201
    assert json.loads(row["response_body"]) == ANSWER_BODY
    assert json.loads(row["response_headers"]) == ANSWER_HEADERS
    [pending] = await sql(scratch_database, COLUMNS_0001.replace("'done'", "'in-flight'"))
    assert tuple(pending) == (None, None, None)


def test_the_suite_runs_on_a_supported_server(scratch_database: str) -> None:
    """The server under test is one the migrations accept (CI runs the minimum, 15)."""
    from eventstore.schema import MIN_SERVER_VERSION

    async def version() -> int:
        conn = await asyncpg.connect(scratch_database)
        try:
            return int(await conn.fetchval("SHOW server_version_num"))
        finally:
            await conn.close()

    assert in_thread(lambda: asyncio.run(version())) >= MIN_SERVER_VERSION
