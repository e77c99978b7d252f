"""docker-compose.yml runs the real thing (no Docker engine here: checked by reading it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import MissingSecret, Settings

ROOT = Path(__file__).resolve().parents[2]
APPS = {"command-api", "query-api", "worker"}


COMPOSE_ONLY = {"POSTGRES_PASSWORD", "MONGO_PASSWORD"}


def compose() -> dict[str, Any]:
    """The compose file, parsed."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_every_part_on_the_real_servers() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "mongo", "redis", "migrate", *APPS}
    assert (services["postgres"]["image"], services["mongo"]["image"]) == ("postgres:16", "mongo:7")
    assert services["redis"]["image"] == "redis:7"
    # change streams and transactions need a replica set
    assert "--replSet rs0" in " ".join(services["mongo"]["entrypoint"])
    assert "rs.initiate" in " ".join(services["mongo"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["ordertrail", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_apps_wait_for_migrations_and_healthy_stores_and_have_health_checks() -> None:
    services = compose()["services"]
    for name in APPS:
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["mongo"]["condition"] == "service_healthy"
        assert service["env_file"] == ".env" and "healthcheck" in service, name
    assert "ports" not in services["worker"]  # so `--scale worker=N` never clashes
    for service in (*APPS, "postgres", "mongo", "redis"):
        assert "healthcheck" in services[service], service


def test_env_example_sets_every_setting_a_deployment_needs() -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("JWT_SECRET", "POSTGRES_PASSWORD", "MONGO_PASSWORD", "MONGODB_DB", "REDIS_URL"):
        assert example.get(name), name
    known = {field.alias for field in Settings.model_fields.values()}
    # No variable the settings would silently ignore, but the passwords compose builds URLs from.
    assert set(example) - COMPOSE_ONLY <= known
    settings = Settings(**example)  # type: ignore[arg-type]
    assert settings.environment == "prod"
    # Its secret is a placeholder: a deployment that forgets to replace it does not start.
    with pytest.raises(MissingSecret, match="JWT_SECRET is a placeholder"):
        settings.require_secret()


def compose_clis() -> list[list[str]]:
    """The compose CLIs this machine has (the docker client may lack the compose plugin)."""
    found = []
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            found.append(command)
    return found


def test_the_compose_cli_accepts_the_file_where_one_is_installed(tmp_path: Path) -> None:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    for command in compose_clis():
        result = subprocess.run(
            [*command, "config", "-q"], capture_output=True, text=True, cwd=tmp_path, check=False
        )
        assert result.returncode == 0, result.stderr
    assert compose()["x-app"]["env_file"] == ".env"


def test_secrets_are_required_and_never_defaulted() -> None:
    """No password or secret has a default: compose refuses to start until .env sets them."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("JWT_SECRET", "POSTGRES_PASSWORD", "MONGO_PASSWORD"):
        assert f"${{{name}:?" in text, name
        assert f"${{{name}:-" not in text and f"${{{name}-" not in text, name
    services = compose()["services"]
    connections = compose()["x-connections"]
    assert "@postgres:5432" in connections["DATABASE_URL"]
    assert "authSource=admin" in connections["MONGODB_URL"]  # MongoDB runs with authentication
    assert "--keyFile" in " ".join(services["mongo"]["entrypoint"])
    assert services["mongo"]["environment"]["MONGO_INITDB_ROOT_USERNAME"] == "ordertrail"
    assert "ordertrail:ordertrail@" not in text  # the old fixed password is gone


def test_restart_policies_grace_periods_and_the_worker_health_check() -> None:
    """Servers restart; apps get time to stop; the worker is healthy only if its subscribers are."""
    services = compose()["services"]
    for name in ("postgres", "mongo", "redis", *APPS):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    for name in APPS:
        assert services[name]["stop_grace_period"] in ("30s", "60s"), name
    assert services["worker"]["stop_grace_period"] == "60s"  # a job checkpoints on its way out
    assert "/health" in " ".join(services["worker"]["healthcheck"]["test"])


def test_the_image_is_built_from_the_production_lock_as_a_non_root_user() -> None:
    """Multi-stage, prod.lock only (never the dev lock), every package, USER not root."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 2
    assert "requirements/prod.lock" in dockerfile and "dev.lock" not in dockerfile
    final = dockerfile.rsplit("FROM ", 1)[1]
    assert "USER 10001" in final and "pip install" not in final
    packages = re.search(r"include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert packages is not None
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert f"COPY {package}/ {package}/" in dockerfile, package
