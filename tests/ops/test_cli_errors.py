"""The CLI as a script sees it: exit codes that say what went wrong, and one line, no traceback.

0 done, 1 holes / still failing (tests/ops/test_repairs.py), 2 bad arguments or settings,
3 a dependency unreachable, 4 anything else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import jwt
import pytest

from core.settings import Settings
from tests.ops.conftest import ORDERTRAIL

ROOT = Path(__file__).resolve().parents[2]
SECRET = "cli-test-secret-" + "y" * 24


def ordertrail(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `ordertrail` with `env` over a clean environment (no test settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MONGODB_"))}
    base = {k: v for k, v in base.items() if k not in ("JWT_SECRET", "ORDERTRAIL_ENV", "REDIS_URL")}
    return subprocess.run(
        [str(ORDERTRAIL), *args],
        env=base | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a failed command, which must be a single `error: ...` line."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_version() -> None:
    """`ordertrail --version` prints the installed version."""
    done = ordertrail("--version")
    assert done.returncode == 0 and done.stdout.startswith("ordertrail "), done.stderr
    assert done.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:1/nothing", "Connect call failed"),
        ("postgresql+asyncpg://postgres@no-such-host.invalid:5432/x", "Name or service"),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/no_such_db_here", "does not exist"),
    ],
)
def test_an_unreachable_database_is_exit_3_with_one_line(url: str, reason: str) -> None:
    """Refused, unresolvable, or no such database: exit 3 naming PostgreSQL and the setting."""
    done = ordertrail("migrate", DATABASE_URL=url)
    assert done.returncode == 3, done.stderr
    line = one_line_error(done)
    assert "PostgreSQL (DATABASE_URL)" in line and reason in line


def test_an_unreachable_mongodb_is_exit_3(read_settings: Settings) -> None:
    """`status` and `audit` with MongoDB down: exit 3, not 1 (which means holes found)."""
    env = {"DATABASE_URL": read_settings.database_url, "MONGODB_URL": "mongodb://127.0.0.1:1"}
    for verb in (["status"], ["audit", "--all"]):
        done = ordertrail(*verb, **env)
        assert done.returncode == 3, (verb, done.stderr)
        assert "MongoDB (MONGODB_URL)" in one_line_error(done)
        assert "Topology" not in done.stderr  # the reason, not PyMongo's dump


def test_an_unmigrated_database_says_to_migrate(database_url: str) -> None:
    """A reachable server without the schema: exit 3 and the command that fixes it."""
    done = ordertrail("status", DATABASE_URL=database_url.rsplit("/", 1)[0] + "/postgres")
    assert done.returncode == 3, done.stderr
    assert "ordertrail migrate" in one_line_error(done)


def test_bad_arguments_and_bad_settings_are_exit_2() -> None:
    """An unknown projection, an unknown verb, a malformed setting: exit 2."""
    assert ordertrail("rebuild", "nope").returncode == 2
    assert ordertrail("no-such-verb").returncode == 2
    done = ordertrail("migrate", PROJECTION_BATCH_SIZE="lots")
    assert done.returncode == 2
    assert "PROJECTION_BATCH_SIZE" in one_line_error(done)


def test_the_compose_env_file_beside_a_host_command_is_not_read(
    tmp_path: Path, database_url: str
) -> None:
    """Compose's `.env` names container hosts; a host command in that directory ignores it,
    unless ORDERTRAIL_ENV_FILE names it."""
    env_file = tmp_path / ".env"
    shutil.copy(ROOT / ".env.example", env_file)
    with env_file.open("a") as extra:
        extra.write("PROJECTION_BATCH_SIZE=not-a-number\n")
    done = ordertrail("migrate", cwd=tmp_path, DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    named = ordertrail(
        "migrate", cwd=tmp_path, DATABASE_URL=database_url, ORDERTRAIL_ENV_FILE=str(env_file)
    )
    assert named.returncode == 2 and "PROJECTION_BATCH_SIZE" in one_line_error(named)


def test_token_needs_no_subject_with_the_dev_secret_but_does_with_a_real_one(
    tmp_path: Path,
) -> None:
    """Bare `ordertrail token` works after `ordertrail dev`; with JWT_SECRET it asks for --sub."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "dev.env").write_text(f"JWT_SECRET={SECRET}\n")
    bare = ordertrail("token", "--state-dir", str(state))
    assert bare.returncode == 0, bare.stderr
    claims = jwt.decode(bare.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "dev" and "ops:admin" in claims["scope"].split()

    unnamed = ordertrail("token", JWT_SECRET=SECRET)
    assert unnamed.returncode == 2 and "--sub" in one_line_error(unnamed)
    named = ordertrail("token", "--sub", "ci-bot", "--scope", "queries:read", JWT_SECRET=SECRET)
    assert named.returncode == 0
    claims = jwt.decode(named.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ci-bot" and claims["scope"] == "queries:read"
