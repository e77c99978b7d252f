"""End to end: `ordertrail dev` serves the API with a usable token, projects, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

ORDERTRAIL = Path(sys.executable).parent / "ordertrail"
READY_TIMEOUT_SECONDS = 30.0
EXIT_TIMEOUT_SECONDS = 15.0
PROJECTION_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class DevRun:
    """A running `ordertrail dev` and what it printed."""

    process: subprocess.Popen[bytes]
    log: Path
    state_dir: Path
    url: str
    token: str
    child_pids: dict[str, int]
    mongodb_url: str
    mongodb_db: str
    query_url: str = ""


def _free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pid_exists(pid: int) -> bool:
    """Whether a process (including an unreaped zombie) with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children, ...), from Linux's /proc."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = {int(child) for child in children.read_text().split()}
        except OSError:
            continue  # the thread or process went away while we looked
        for child in pids:
            found |= {child, *_descendants(child)}
    return found


def _wait_ready(process: subprocess.Popen[bytes], log: Path, started: DevRun) -> DevRun:
    """Wait (bounded) until the banner with URL and token is printed; fail with the log if not."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        url = re.search(r"^\s*API:\s+(http\S+)", output, re.MULTILINE)
        query = re.search(r"^\s*Query API:\s+(http\S+)", output, re.MULTILINE)
        token = re.search(r"^\s*Token:\s+(\S+)", output, re.MULTILINE)
        if url and query and token:
            started_lines = re.findall(r"started (\S+) \(pid (\d+)\)", output)
            pids = {name: int(pid) for name, pid in started_lines}
            found = {"url": url.group(1), "query_url": query.group(1), "token": token.group(1)}
            return replace(started, child_pids=pids, **found)
        if process.poll() is not None:
            pytest.fail(f"ordertrail dev exited with {process.returncode}:\n{output}")
        time.sleep(0.2)
    pytest.fail(f"ordertrail dev not ready in {READY_TIMEOUT_SECONDS}s:\n{log.read_text()}")


def _dev_env(
    database_url: str, mongodb_url: str, mongodb_db: str, redis_url: str
) -> dict[str, str]:
    """The test's servers, and none of the runner's settings the dev stack should decide itself."""
    env = {**os.environ, "DATABASE_URL": database_url, "MONGODB_URL": mongodb_url}
    env.update(MONGODB_DB=mongodb_db, REDIS_URL=redis_url)
    # Exercise the dev stack's own secret handling, whatever the test runner's environment holds.
    for name in ("JWT_SECRET", "ORDERTRAIL_ENV", "ORDERTRAIL_DEV_FORCE_EMBEDDED_PG"):
        env.pop(name, None)
    for name in ("ORDERTRAIL_DEV_FORCE_EMBEDDED_MONGO", "ORDERTRAIL_DEV_FORCE_EMBEDDED_REDIS"):
        env.pop(name, None)
    return env


@pytest.fixture
def dev_run(
    database_url: str, mongodb_url: str, redis_url: str, tmp_path: Path
) -> Iterator[DevRun]:
    """`ordertrail dev` on a free port against the test servers, stopped afterwards regardless."""
    log, state_dir = tmp_path / "dev.log", tmp_path / "state"
    mongodb_db = f"t_dev_{uuid.uuid4().hex[:12]}"
    argv = [str(ORDERTRAIL), "dev", "--port", str(_free_port()), "--state-dir", str(state_dir)]
    argv += ["--query-port", str(_free_port())]
    with log.open("wb") as out:
        # A file, not a pipe: uvicorn's access log shares this stdout and would fill a pipe.
        env = _dev_env(database_url, mongodb_url, mongodb_db, redis_url)
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    started = DevRun(process, log, state_dir, "", "", {}, mongodb_url, mongodb_db)
    try:
        yield _wait_ready(process, log, started)
    finally:
        _stop(process)
        client: MongoClient[dict[str, object]] = MongoClient(mongodb_url)
        with client:
            client.drop_database(mongodb_db)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the dev stack if the test left it running; kill it if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(EXIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_projected(run: DevRun, sku: str) -> dict[str, object] | None:
    """Poll (bounded) the worker's `products` read model for the product with this SKU."""
    client: MongoClient[dict[str, object]] = MongoClient(run.mongodb_url)
    deadline = time.monotonic() + PROJECTION_TIMEOUT_SECONDS
    with client:
        products = client[run.mongodb_db]["products"]
        while time.monotonic() < deadline:
            if (found := products.find_one({"sku": sku})) is not None:
                return found
            time.sleep(0.1)
    return None


def test_dev_serves_the_api_projects_and_stops_on_sigint(dev_run: DevRun) -> None:
    # Upper case: the domain normalises SKUs, and the read model stores the normalised one.
    sku = f"E2E-{uuid.uuid4().hex[:12].upper()}"
    product = {"sku": sku, "name": "Mug", "price": "9.50", "category": "kitchen"}
    auth = {"Authorization": f"Bearer {dev_run.token}"}
    # trust_env=False: a proxy configured in the environment must not intercept localhost.
    with httpx.Client(base_url=dev_run.url, timeout=10.0, trust_env=False) as client:
        health = client.get("/health")
        created = client.post("/api/v1/products", json=product, headers=auth)

    assert health.status_code == 200, health.text
    assert created.status_code == 201, created.text
    # The banner's console link logs in once, with a code that is not the token.
    link = re.search(r"^\s*Console:\s+(http\S+)/console/#code=(\S+)", dev_run.log.read_text(), re.M)
    assert link is not None and link.group(1) == dev_run.url
    assert dev_run.token not in link.group(0)
    with httpx.Client(base_url=dev_run.url, timeout=10.0, trust_env=False) as client:
        traded = client.post("/console/login", json={"code": link.group(2)})
        assert traded.status_code == 200, traded.text
        ops = {"Authorization": f"Bearer {traded.json()['token']}"}
        assert client.get("/api/v1/ops/status", headers=ops).status_code == 200
        assert client.post("/console/login", json={"code": link.group(2)}).status_code == 404
    assert (dev_run.state_dir / "dev-token").read_text().strip() == dev_run.token
    assert "JWT_SECRET=" in (dev_run.state_dir / "dev.env").read_text()
    assert {"command-api", "query-api", "worker"} <= dev_run.child_pids.keys()
    projected = _wait_projected(dev_run, sku)
    assert projected is not None, f"no {sku} in products:\n{dev_run.log.read_text()}"
    assert projected["name"] == "Mug"
    with httpx.Client(base_url=dev_run.query_url, timeout=10.0, trust_env=False) as client:
        fresh = {"X-Min-Position": created.headers["X-Position"]}
        read = client.get(f"/api/v1/products/by-sku/{sku}", headers=auth | fresh)
    assert read.status_code == 200, read.text
    assert read.json()["id"] == created.json()["id"]

    # Grandchildren too: uvicorn's and dramatiq's own worker processes.
    tree = _descendants(dev_run.process.pid) | set(dev_run.child_pids.values())
    dev_run.process.send_signal(signal.SIGINT)
    assert dev_run.process.wait(timeout=EXIT_TIMEOUT_SECONDS) == 0
    survivors = sorted(pid for pid in tree if _pid_exists(pid))
    assert not survivors, f"processes outlived ordertrail dev: {survivors}"
