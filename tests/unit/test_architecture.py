"""The domain stays pure: it imports the standard library and eventsourcing.domain only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"eventsourcing"}
PROJECT_PACKAGES = {
    "eventstore",
    "command_api",
    "query_api",
    "projections",
    "workers",
    "ops",
    "core",
}


def imported_modules(path: Path) -> set[str]:
    """Top-level module names a file imports (absolute imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_domain_imports_nothing_but_stdlib_and_eventsourcing_domain() -> None:
    offenders = []
    for path in sorted((ROOT / "domain").rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "domain" or top in sys.stdlib_module_names:
                continue
            if top in ALLOWED_THIRD_PARTY and module in ("eventsourcing.domain", "eventsourcing"):
                continue
            offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom eventstore.postgres import PostgresEventStore\n")
    assert {"sqlalchemy", "eventstore.postgres"} <= imported_modules(bad)


def test_command_side_does_not_import_the_query_side() -> None:
    for package in ("command_api", "eventstore", "domain"):
        for path in (ROOT / package).rglob("*.py"):
            tops = {m.split(".")[0] for m in imported_modules(path)}
            assert not tops & {"query_api", "projections"}, path


# What each process imports, transitively, once its composition root has built it.
PROCESS_IMPORTS = {
    "command API": "from command_api.app import create_app; create_app()",
    "query API": "from query_api.app import create_app; create_app()",
    "worker": "import workers.actors",
    "CLI": "import ops.cli",
}
PROJECTION_FOLDS = {
    "projections.registry",
    "projections.products",
    "projections.stock",
    "projections.orders",
    "projections.sales_daily",
    "projections.audit_log",
}
WRITE_SIDE = ("domain", "eventstore", "command_api")


def loaded_by(process: str) -> set[str]:
    """The project's modules loaded in a fresh interpreter that builds `process`."""
    code = f"{PROCESS_IMPORTS[process]}\nimport sys\nprint('\\n'.join(sys.modules))"
    env = {**os.environ, "ORDERTRAIL_ENV": "dev", "PYTHONPATH": str(ROOT)}
    env.pop("JWT_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    tops = PROJECT_PACKAGES | {"domain", "messaging", "subscriptions"}
    return {name for name in done.stdout.split() if name.split(".")[0] in tops}


def under(modules: set[str], *packages: str) -> set[str]:
    """Those of `modules` in any of `packages` (the package itself or below it)."""
    return {m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)}


def test_the_command_api_process_imports_no_actor_no_projection_fold_and_no_query_side() -> None:
    loaded = loaded_by("command API")
    assert "ops.routes" in loaded  # the ops routes are mounted: the check covers them too
    assert under(loaded, "workers.actors", "workers.service", "query_api") == set()
    assert loaded & PROJECTION_FOLDS == set()


def test_the_query_api_process_imports_nothing_of_the_write_side() -> None:
    loaded = loaded_by("query API")
    assert under(loaded, *WRITE_SIDE, "workers", "ops", "messaging", "subscriptions") == set()
    assert loaded & PROJECTION_FOLDS == set()


def test_the_worker_process_imports_neither_api_nor_the_cli() -> None:
    loaded = loaded_by("worker")
    assert "workers.bootstrap" in loaded
    assert under(loaded, "command_api", "query_api", "ops") == set()


def test_the_cli_imports_neither_api_at_startup() -> None:
    # `ordertrail dev` runs the APIs as processes of their own; the CLI need not load them.
    assert under(loaded_by("CLI"), "command_api", "query_api") == set()


# Leaves of `core` any base layer may import: standard library only (checked below), so they
# bring no settings, metrics or drivers along. The event store's repository retries through one
# and names events with the other.
SHARED_LEAVES = {"core.ids", "core.retry"}


def test_shared_leaves_import_only_the_standard_library() -> None:
    for leaf in sorted(SHARED_LEAVES):
        path = ROOT / (leaf.replace(".", "/") + ".py")
        tops = {module.split(".")[0] for module in imported_modules(path)}
        assert tops <= sys.stdlib_module_names, leaf


def test_base_layers_import_upwards_nothing() -> None:
    """core imports no other project package; messaging only core; subscriptions no process."""
    rules = {
        "core": PROJECT_PACKAGES - {"core"} | {"domain", "messaging", "subscriptions"},
        "messaging": PROJECT_PACKAGES | {"domain", "subscriptions"},
        "subscriptions": {"command_api", "query_api", "projections", "workers", "ops"},
        "eventstore": {"command_api", "query_api", "projections", "workers", "ops", "core"},
    }
    offenders = []
    for package, forbidden in rules.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in imported_modules(path):
                if module.split(".")[0] in forbidden and module not in SHARED_LEAVES:
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_read_model_documents_import_the_standard_library_only() -> None:
    # The query API imports them: nothing of the write side may come along.
    modules = imported_modules(ROOT / "projections" / "documents.py")
    assert {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names} == set()
