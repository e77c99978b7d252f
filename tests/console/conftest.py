"""The ops console in a real browser: Debian's headless Chromium driven by Selenium, against a
command API and a worker running as processes on a database of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from core.auth import SCOPES, mint_token
from core.settings import Settings
from ops.migrate import upgrade
from tests.conftest import JWT_SECRET, sqlalchemy_url
from tests.reliability.faults import process_env
from tests.support.processes import dramatiq_worker, uvicorn_server
from tests.support.servers import in_thread, run_sql, with_database

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Flags for a closed network: without the background ones Chromium keeps dialling Google.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
]


@dataclass(frozen=True)
class Stack:
    """A command API and a worker on a database of their own."""

    url: str
    settings: Settings
    admin_token: str


@pytest.fixture(scope="module")
def stack(
    settings: Settings,
    pg_admin_url: str,
    mongodb_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The command API (console and ops routes) and a worker running subscribers and jobs."""
    name = f"ordertrail_test_console_{uuid.uuid4().hex[:8]}"
    run_sql(pg_admin_url, f'CREATE DATABASE "{name}"')
    url = sqlalchemy_url(with_database(pg_admin_url, name))
    in_thread(lambda: upgrade(url))
    own = settings.model_copy(
        update={"database_url": url, "mongodb_url": mongodb_url, "mongodb_db": name}
    )
    env = process_env(own) | {"JWT_SECRET": JWT_SECRET, "ORDERTRAIL_ENV": "test"}
    env |= {"PROJECTION_TICK_SECONDS": "0.2", "PROJECTION_RETRIES": "1"}
    logs = tmp_path_factory.mktemp("console-logs")
    try:
        with (
            uvicorn_server("command_api.main:app", env, logs / "command.log") as base,
            dramatiq_worker(env, logs / "worker.log"),
        ):
            admin = mint_token(JWT_SECRET, "operator", list(SCOPES))
            # Ready before the first test: processes a test body starts are ended with it
            # (tests/conftest.py), and the worker forks its process after it boots.
            _wait_for_owners(base, admin, logs / "worker.log")
            yield Stack(base, own, admin)
    finally:
        with MongoClient(mongodb_url) as client:
            client.drop_database(name)
        run_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for_owners(base: str, token: str, log: Path, seconds: float = 60) -> None:
    """Until a worker owns every subscriber."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = httpx.get(
            f"{base}/api/v1/ops/status", headers={"Authorization": f"Bearer {token}"}
        )
        if status.status_code == 200 and all(
            sub["owner"] for sub in status.json()["subscribers"].values()
        ):
            return
        time.sleep(0.2)
    pytest.fail(f"the worker did not take its subscribers:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each page's screenshot goes (ORDERTRAIL_SCREENSHOTS, else the test's output)."""
    chosen = os.environ.get("ORDERTRAIL_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium through chromedriver (both from Debian; nothing downloaded)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them)")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
