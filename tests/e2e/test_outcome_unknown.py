"""A command whose connection is lost while it commits: 503 "outcome_unknown", never "nothing
was written", and a retry with the same Idempotency-Key gets the answer it would have had.

The command API talks to PostgreSQL through a proxy that cuts the session at the commit: after
the server committed (its reply is lost) or before the server got the statement (nothing
committed). A keyed registration is one autocommit statement: the append taking its key and
storing its response.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import httpx
import pytest
from sqlalchemy.engine import make_url

from command_api.app import create_app
from core.settings import Settings
from domain.values import product_id
from eventstore.postgres import PostgresEventStore
from tests.e2e.helpers import PRODUCTS, new_sku
from tests.support.cutting_proxy import CuttingProxy, command_complete, parse

Auth = Callable[..., dict[str, str]]


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[CuttingProxy]:
    """A proxy in front of the run's PostgreSQL."""
    url = make_url(database_url)
    proxy = CuttingProxy((url.host or "127.0.0.1", url.port or 5432))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def api(settings: Settings, proxy: CuttingProxy) -> AsyncIterator[httpx.AsyncClient]:
    """The command API, its database connections going through the proxy."""
    url = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    proxied = settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    app = create_app(proxied)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://command-api") as client:
            yield client


def body() -> dict[str, str]:
    """A product registration."""
    return {"sku": new_sku(), "name": "Mug", "price": "9.50", "category": "kitchen"}


def assert_outcome_unknown(response: httpx.Response) -> None:
    """503 that says the command may have been applied, and how to retry safely."""
    assert response.status_code == 503, response.text
    answer = response.json()
    assert answer["code"] == "outcome_unknown"
    assert "may or may not have been applied" in answer["detail"]
    assert "same Idempotency-Key" in answer["detail"]
    assert response.headers["Retry-After"]


async def test_a_commit_whose_answer_is_lost_is_replayed_to_a_retry_with_the_same_key(
    api: httpx.AsyncClient, proxy: CuttingProxy, auth: Auth, pg_store: PostgresEventStore
) -> None:
    # A first keyed command readies the connection (the append prepared, its parameter types
    # looked up), so that the next SELECT to complete on it is the append's own.
    first = await api.post(PRODUCTS, json=body(), headers=auth() | {"Idempotency-Key": uuid4().hex})
    assert first.status_code == 201, first.text
    sent, key = body(), {"Idempotency-Key": uuid4().hex}
    proxy.arm(to_client=command_complete(b"SELECT"))  # the append's, which took the key
    assert_outcome_unknown(await api.post(PRODUCTS, json=sent, headers=auth() | key))
    assert proxy.cuts == 1
    stored = await pg_store.read_stream(product_id(sent["sku"]))
    assert [event.type for event in stored] == ["ProductRegistered"]  # it did commit

    started = time.monotonic()
    again = await api.post(PRODUCTS, json=sent, headers=auth() | key)
    assert time.monotonic() - started < 5  # no wait for the first attempt's in-flight lock
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {
        "id": str(product_id(sent["sku"])),
        "version": 1,
        "position": stored[0].token,
    }
    assert len(await pg_store.read_stream(product_id(sent["sku"]))) == 1


async def test_a_commit_that_never_reached_the_server_runs_again_on_a_retry_with_the_key(
    api: httpx.AsyncClient, proxy: CuttingProxy, auth: Auth, pg_store: PostgresEventStore
) -> None:
    sent, key = body(), {"Idempotency-Key": uuid4().hex}
    proxy.arm(to_server=parse(b"WITH failed AS"))  # the append (with key and response) prepared
    assert_outcome_unknown(await api.post(PRODUCTS, json=sent, headers=auth() | key))
    assert proxy.cuts == 1
    assert await pg_store.read_stream(product_id(sent["sku"])) == []  # it did not

    again = await api.post(PRODUCTS, json=sent, headers=auth() | key)
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert len(await pg_store.read_stream(product_id(sent["sku"]))) == 1


async def test_an_autocommit_append_cut_after_the_server_ran_it_is_outcome_unknown(
    api: httpx.AsyncClient, proxy: CuttingProxy, auth: Auth, pg_store: PostgresEventStore
) -> None:
    """Without a key the append is a single autocommit statement: cut at its reply."""
    sent = body()
    proxy.arm(to_client=command_complete(b"INSERT"))
    assert_outcome_unknown(await api.post(PRODUCTS, json=sent, headers=auth()))
    assert proxy.cuts == 1
    assert len(await pg_store.read_stream(product_id(sent["sku"]))) == 1
