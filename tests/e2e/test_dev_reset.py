"""`ordertrail dev --reset`: deletes the dev stack's own data, and refuses anything else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ops.devstack import ResetRefused, reset_dev_data
from tests.support.servers import run_sql

ORDERTRAIL = Path(sys.executable).parent / "ordertrail"


def test_reset_refuses_a_database_it_did_not_create(tmp_path: Path, database_url: str) -> None:
    """With DATABASE_URL set, --reset exits 2 naming it, before starting or deleting anything."""
    state = tmp_path / "state"
    (state / "mongo").mkdir(parents=True)
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("MONGODB_URL", None)
    argv = [str(ORDERTRAIL), "dev", "--reset", "--state-dir", str(state)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "DATABASE_URL" in done.stderr and "applying migrations" not in done.stdout
    assert (state / "mongo").is_dir()  # untouched
    with pytest.raises(ResetRefused, match="MONGODB_URL"):
        reset_dev_data(state, {"MONGODB_URL": "mongodb://prod:27017"})


def test_reset_deletes_the_embedded_data_and_drops_the_dev_database(
    tmp_path: Path, pg_admin_url: str
) -> None:
    """The embedded servers' directories go, and the database the stack made on the local
    server is dropped (here a scratch one standing in for `ordertrail`)."""
    state = tmp_path / "state"
    for name in ("postgres", "mongo"):
        (state / name / "data").mkdir(parents=True)
        (state / name / "data" / "file").write_text("old")
    (state / "dev.env").write_text("JWT_SECRET=kept\n")
    scratch = f"ordertrail_test_reset_{uuid.uuid4().hex[:8]}"
    url = make_url(pg_admin_url)
    server = (url.host or "127.0.0.1", url.port or 5432)
    run_sql(pg_admin_url, f'CREATE DATABASE "{scratch}"')
    try:
        done = reset_dev_data(state, {}, database=scratch, server=server)
    finally:
        run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{scratch}"')
    assert not (state / "postgres").exists() and not (state / "mongo").exists()
    assert (state / "dev.env").read_text() == "JWT_SECRET=kept\n"  # tokens stay valid
    assert any(scratch in line for line in done) and len(done) == 3
    # Nothing left to reset: nothing reported.
    assert reset_dev_data(state, {}, database=scratch, server=server) == []
