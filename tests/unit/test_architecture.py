"""The domain stays pure: it imports the standard library and eventsourcing.domain only."""

from __future__ import annotations

import ast
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


def test_read_model_documents_import_the_standard_library_only() -> None:
    # The query API imports them: nothing of the write side may come along.
    modules = imported_modules(ROOT / "projections" / "documents.py")
    assert {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names} == set()
