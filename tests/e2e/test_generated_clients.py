"""Clients generated from the two OpenAPI schemas (openapi-python-client) place an order and
read it back, with the headers and error codes the schemas declare.

The generator runs in a venv of its own (requirements/openapi-client.lock: it pins an older
typer), and so does the script using the generated clients, against real uvicorn servers and
a real worker: what a team generating a client from /openapi.json would do.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from command_api.app import create_app
from core.auth import mint_token
from core.settings import Settings
from query_api.app import create_app as create_query_app
from tests.conftest import JWT_SECRET
from tests.reliability.faults import process_env
from tests.support.processes import dramatiq_worker, uvicorn_server

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys, time, uuid
from command_client import AuthenticatedClient as Commands
from command_client.api.orders import place_order
from command_client.api.products import register_product
from command_client.api.stock import receive_stock
from command_client.models import (
    ErrorResponse, OrderLineRequest, PlaceOrderRequest, ReceiveStockRequest,
    RegisterProductRequest,
)
from query_client import AuthenticatedClient as Queries
from query_client.api.orders import get_order

command_url, query_url, writer, reader, sku = sys.argv[1:6]
commands = Commands(base_url=command_url, token=writer)
product = RegisterProductRequest(sku=sku, name="Generated", price="4.50", category="codegen")
first = register_product.sync_detailed(client=commands, body=product, idempotency_key="k-" + sku)
again = register_product.sync_detailed(client=commands, body=product, idempotency_key="k-" + sku)
stock = ReceiveStockRequest(quantity=5)
stocked = receive_stock.sync_detailed(sku=sku, client=commands, body=stock)
lines = [OrderLineRequest(sku=sku, quantity=2)]
placed = place_order.sync_detailed(
    client=commands, body=PlaceOrderRequest(customer_id=uuid.uuid4(), lines=lines)
)
nobody = [OrderLineRequest(sku="NONE-" + sku, quantity=1)]
unknown = place_order.sync_detailed(
    client=commands, body=PlaceOrderRequest(customer_id=uuid.uuid4(), lines=nobody)
)
queries = Queries(base_url=query_url, token=reader)
order_id, position = placed.parsed.id, placed.headers["x-position"]
status, deadline = None, time.monotonic() + 60
while status != "confirmed" and time.monotonic() < deadline:
    read = get_order.sync_detailed(order_id=order_id, client=queries, x_min_position=position)
    status = read.parsed.status if read.status_code == 200 else None
    time.sleep(0.2)
print(json.dumps({
    "first": [first.status_code, first.parsed.version, first.headers.get("etag")],
    "replayed": [again.status_code, again.headers.get("idempotent-replayed"),
                 str(again.parsed.id) == str(first.parsed.id)],
    "stocked": stocked.status_code,
    "placed": [placed.status_code, bool(position)],
    "unknown": [unknown.status_code, isinstance(unknown.parsed, ErrorResponse),
                getattr(unknown.parsed, "code", None)],
    "status": status,
    "read_position": read.headers.get("x-read-position"),
}))
"""


def run(*argv: str | Path, **kwargs: object) -> str:
    """Run a command; its stdout, or a failure with its output."""
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-3000:])
    return str(done.stdout)


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a venv with openapi-python-client."""
    venv = tmp_path_factory.mktemp("codegen") / "venv"
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    lock = ROOT / "requirements" / "openapi-client.lock"
    run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", "-r", lock)
    return venv / "bin"


def generate(generator: Path, schema: dict[str, object], name: str, into: Path) -> list[str]:
    """Generate package `name` from `schema` into `into`; the generator's warnings."""
    spec = into / f"{name}.json"
    spec.write_text(json.dumps(schema))
    config = into / f"{name}.yml"
    config.write_text(f"package_name_override: {name}\n")
    env = {"PATH": f"{generator}:/usr/bin:/bin"}  # its ruff formats what it wrote
    out = run(
        generator / "openapi-python-client",
        "generate",
        "--path",
        spec,
        "--output-path",
        into / name,
        "--config",
        config,
        "--meta",
        "none",
        env=env,
    )
    return [line for line in out.splitlines() if "warning" in line.lower()]


@contextlib.contextmanager
def stack(settings: Settings, logs: Path) -> Iterator[tuple[str, str]]:
    """Both APIs as uvicorn processes and a worker; the APIs' base URLs."""
    env = process_env(settings) | {"JWT_SECRET": JWT_SECRET, "ORDERTRAIL_ENV": "test"}
    with (
        uvicorn_server("command_api.main:app", env, logs / "command.log") as command_url,
        uvicorn_server("query_api.main:app", env, logs / "query.log") as query_url,
        dramatiq_worker(env, logs / "worker.log"),
    ):
        yield command_url, query_url


def test_generated_clients_place_an_order_and_read_it(
    generator: Path, read_settings: Settings, tmp_path: Path, clean_db: None
) -> None:
    schemas = {
        "command_client": create_app(read_settings).openapi(),
        "query_client": create_query_app(read_settings).openapi(),
    }
    for name, schema in schemas.items():
        assert generate(generator, schema, name, tmp_path) == [], name  # no piece skipped
    writer = mint_token(JWT_SECRET, "codegen", ["commands:write"])
    reader = mint_token(JWT_SECRET, "codegen", ["queries:read"])
    with stack(read_settings, tmp_path) as (command_url, query_url):
        out = run(
            generator / "python",
            "-c",
            SCRIPT,
            command_url,
            query_url,
            writer,
            reader,
            "GEN-1",
            env={"PYTHONPATH": str(tmp_path)},
        )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["first"] == [201, 1, '"1"']
    assert result["replayed"] == [201, "true", True]  # Idempotent-Replayed, declared and read
    assert result["stocked"] in (200, 201)
    assert result["placed"] == [201, True]
    assert result["unknown"] == [409, True, "unknown_product"]  # a typed error with its code
    assert result["status"] == "confirmed"  # the worker's fulfilment, read through the client
    assert result["read_position"]
