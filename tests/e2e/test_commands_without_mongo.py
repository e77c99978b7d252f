"""Commands never wait on MongoDB: with the read-model server stopped, the command API serves.

The command API process also mounts the ops routes, which do need MongoDB. Their client is
reached per ops request only; stopping its server must leave every command route untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from command_api.app import create_app
from core.settings import Settings
from tests.support.mongo import OwnMongo
from tests.support.servers import asgi_client, free_port

Auth = Callable[..., dict[str, str]]
COMMANDS = 20
# Far under the read-model client's server selection timeout (3 s): a command that waited on
# MongoDB even once would take at least that long.
SLOWEST_ACCEPTABLE_SECONDS = 2.0


async def test_commands_succeed_and_stay_fast_with_mongodb_stopped(
    settings: Settings, clean_db: None, auth: Auth, tmp_path: Path
) -> None:
    mongo = OwnMongo(free_port(), tmp_path / "mongo")
    mongo.start()
    app = create_app(settings.model_copy(update={"mongodb_url": mongo.url}))
    admin = auth("ops:admin")
    try:
        async with asgi_client(app, "http://command-api") as api:
            assert (await api.get("/api/v1/ops/status", headers=admin)).status_code == 200
            mongo.stop()
            slowest, sku = 0.0, "NOMONGO-{}"
            for n in range(COMMANDS):
                body = {"sku": sku.format(n), "name": "n", "price": "1.00", "category": "c"}
                started = time.perf_counter()
                response = await api.post("/api/v1/products", json=body, headers=auth())
                slowest = max(slowest, time.perf_counter() - started)
                assert response.status_code == 201, response.text
                product = response.json()["id"]
                reprice = {"price": "2.00"}
                path = f"/api/v1/products/{product}/reprice"
                assert (await api.post(path, json=reprice, headers=auth())).status_code == 200
            ready = await api.get("/ready")
            status = await api.get("/api/v1/ops/status", headers=admin)
    finally:
        mongo.stop()
    assert slowest < SLOWEST_ACCEPTABLE_SECONDS, slowest
    assert ready.status_code == 200, ready.text  # the command API's readiness is PostgreSQL's
    assert status.status_code == 503 and status.headers["Retry-After"] == "1", status.text
