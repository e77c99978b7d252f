"""Structured logs, read back from real processes: a command's access line and its projection's
line carry the same request, correlation and causation ids, actor, stream and position."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.context import stop, wait_http
from core.auth import mint_token
from core.settings import Settings
from tests.conftest import JWT_SECRET
from tests.reliability.faults import process_env
from tests.support.processes import dramatiq_worker
from tests.support.servers import free_port

WAIT_SECONDS = 60.0


def json_lines(log: Path) -> list[dict[str, Any]]:
    """The lines of a log that are JSON objects."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_a_command_and_its_projection_log_json_with_the_commands_ids(
    read_settings: Settings, tmp_path: Path, clean_db: None
) -> None:
    """LOG_FORMAT=json: every line of the command API is JSON; its access line and the
    worker's line for the projected event name the same ids, stream and position."""
    env = process_env(read_settings) | {
        "JWT_SECRET": JWT_SECRET,
        "ORDERTRAIL_ENV": "test",
        "LOG_FORMAT": "json",
    }
    api_log, worker_log = tmp_path / "command.log", tmp_path / "worker.log"
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "command_api.main:app", "--port", str(port)]
    with api_log.open("wb") as out:  # the access log on, as a deployment runs it
        api = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health", api)
        with dramatiq_worker(env | {"LOG_LEVEL": "DEBUG"}, worker_log):
            token = mint_token(JWT_SECRET, "log-tester", ["commands:write"])
            request_id, correlation = f"req-{uuid.uuid4().hex[:8]}", "corr-order-42"
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Request-ID": request_id,
                "X-Correlation-ID": correlation,
            }
            body = {
                "sku": f"LOG-{uuid.uuid4().hex[:6]}",
                "name": "Logged",
                "price": "1.00",
                "category": "x",
            }
            created = httpx.post(f"{base}/api/v1/products", json=body, headers=headers)
            assert created.status_code == 201, created.text
            stream, position = created.json()["id"], created.headers["x-position"]

            deadline, projected = time.monotonic() + WAIT_SECONDS, []
            while not projected and time.monotonic() < deadline:
                projected = [
                    line
                    for line in json_lines(worker_log)
                    if line.get("subscriber") == "products" and line.get("stream_id") == stream
                ]
                time.sleep(0.2)
            assert projected, worker_log.read_text()[-3000:]
    finally:
        stop(api)

    lines = api_log.read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines), lines[:5]
    [access] = [
        line
        for line in json_lines(api_log)
        if line["logger"] == "uvicorn.access" and line.get("request_id") == request_id
    ]
    expected = {
        "request_id": request_id,
        "correlation_id": correlation,
        "causation_id": request_id,  # no X-Causation-ID: the request caused it
        "actor": "log-tester",
        "stream_id": stream,
        "position": position,
    }
    assert {key: access.get(key) for key in expected} == expected, access
    assert (access["method"], access["path"], access["status"]) == (
        "POST",
        "/api/v1/products",
        201,
    )
    [line] = projected
    assert {key: line.get(key) for key in expected} == expected, line
    assert line["event_type"] == "ProductRegistered" and line["level"] == "debug"
    assert line["time"].endswith("+00:00")
