"""Fixtures of the integration tests that need a database of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.servers import run_sql, with_database


@pytest.fixture
def scratch_database(pg_admin_url: str) -> Iterator[str]:
    """An empty database (libpq URL), dropped afterwards."""
    name = f"ordertrail_migrate_{uuid.uuid4().hex[:10]}"
    run_sql(pg_admin_url, f'CREATE DATABASE "{name}"')
    yield with_database(pg_admin_url, name)
    run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
