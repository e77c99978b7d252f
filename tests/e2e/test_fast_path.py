"""The command fast path answers every request exactly as FastAPI's own dispatch does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY

from command_api import errors
from command_api.app import create_app, front
from command_api.dispatch import CommandDep, command_runner
from command_api.fastpath import FrontedFastAPI, fast_route, fast_routes
from command_api.routes import health, orders, products, stock
from command_api.schemas import RenameProductRequest
from core.settings import Settings
from ops import routes as ops
from tests.e2e.conventions.helpers import product_body
from tests.e2e.conventions.test_never_a_500 import SWEEP
from tests.e2e.helpers import ORDERS, PRODUCTS, stock_url
from tests.support.servers import asgi_client

Auth = Callable[..., dict[str, str]]
Answer = tuple[int, Any, dict[str, str | None]]
HEADERS = ("content-type", "etag", "idempotent-replayed", "www-authenticate", "retry-after")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
async def plain_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The command API with the fast path off: FastAPI dispatches every request itself."""
    app = create_app(settings.model_copy(update={"command_fast_path": False}))
    async with asgi_client(app, "http://command-api") as client:
        yield client


def served(outcome: str) -> float:
    """How many requests the fast path served or deferred so far (this process)."""
    value = REGISTRY.get_sample_value("ordertrail_command_fast_path_total", {"outcome": outcome})
    return value or 0.0


def normal(response: httpx.Response, prefix: str) -> Answer:
    """Status, body and headers with this run's own names, ids and positions masked."""
    text = UUID_TEXT.sub("<id>", response.text.replace(prefix, "<sku>"))
    text = re.sub(r'"position":"[0-9a-f]{32}"', '"position":"<pos>"', text)
    return response.status_code, text, {name: response.headers.get(name) for name in HEADERS}


async def transcript(api: httpx.AsyncClient, auth: Auth, prefix: str) -> list[Answer]:
    """One product's and one order's life, with every kind of refusal along the way."""
    answers: list[Answer] = []

    async def call(url: str, body: Any, **headers: str) -> httpx.Response:
        response = await api.post(url, json=body, headers=auth() | headers)
        answers.append(normal(response, prefix))
        return response

    sku = f"{prefix}-MUG"
    pid = (await call(PRODUCTS, product_body(sku=sku))).json()["id"]
    await call(PRODUCTS, product_body(sku=sku))  # 409: the SKU is taken
    await call(f"{PRODUCTS}/{pid}/rename", {"name": "Cup"}, **{"If-Match": '"1"'})
    await call(f"{PRODUCTS}/{pid}/rename", {"name": "Jug"}, **{"If-Match": '"1"'})  # 412
    await call(f"{PRODUCTS}/{pid}/rename", {"name": "Jug"}, **{"If-Match": "one"})  # 422
    await call(f"{PRODUCTS}/{pid}/reprice", {"price": "abc"})  # 422 from the body
    await call(f"{PRODUCTS}/{uuid4()}/rename", {"name": "Jug"})  # 404
    await call(stock_url(sku, "receive"), {"quantity": 5})  # 201, then 200
    await call(stock_url(sku, "receive"), {"quantity": 5, "reference": "PO-2"})
    await call(stock_url(f"{prefix}-NONE", "receive"), {"quantity": 5})  # 404
    await call(stock_url(sku, "adjust"), {"delta": -11, "reason": "count"})  # 409
    order = {"customer_id": str(uuid4()), "lines": [{"sku": sku, "quantity": 2}]}
    key = {"Idempotency-Key": f"{prefix}-order"}
    oid = (await call(ORDERS, order, **key)).json()["id"]
    await call(ORDERS, order, **key)  # the same answer again, replayed
    await call(ORDERS, order | {"customer_id": str(uuid4())}, **key)  # 422: another body
    await call(ORDERS, {**order, "lines": [{"sku": f"{prefix}-NONE", "quantity": 1}]})  # 409
    await call(f"{ORDERS}/{oid}/ship", {})  # 409: still pending
    await call(f"{ORDERS}/{oid}/cancel", {"reason": "changed my mind"})
    await call(f"{PRODUCTS}/{pid}/discontinue", {"reason": "end of line"})
    for refused in ({}, auth("queries:read")):  # 401, 403
        response = await api.post(f"{PRODUCTS}/{pid}/rename", json={"name": "x"}, headers=refused)
        answers.append(normal(response, prefix))
    return answers


async def test_commands_answer_alike_with_and_without_the_fast_path(
    api: httpx.AsyncClient, plain_api: httpx.AsyncClient, auth: Auth
) -> None:
    before = served("served"), served("deferred")
    fast = await transcript(api, auth, f"F{uuid4().hex[:7].upper()}")
    after = served("served"), served("deferred")
    plain = await transcript(plain_api, auth, f"P{uuid4().hex[:7].upper()}")
    statuses = [201, 409, 200, 412, 422, 422, 404, 201, 200, 404, 409, 201, 201, 422, 409, 409]
    assert [answer[0] for answer in fast] == [*statuses, 200, 200, 401, 403]
    assert fast == plain
    # Every valid request was served by the fast path; the bad body went on to FastAPI.
    assert after[0] - before[0] == len(fast) - 1 and after[1] - before[1] == 1
    assert (served("served"), served("deferred")) == after  # the plain app never uses it


@pytest.mark.parametrize("index", range(len(SWEEP)))
async def test_bad_requests_answer_alike_with_and_without_the_fast_path(
    api: httpx.AsyncClient, plain_api: httpx.AsyncClient, admin: dict[str, str], index: int
) -> None:
    method, url, kwargs = SWEEP[index]
    kwargs = dict(kwargs) | {"headers": admin | kwargs.get("headers", {})}
    fast = await api.request(method, url, **kwargs)
    plain = await plain_api.request(method, url, **kwargs)
    assert normal(fast, "-") == normal(plain, "-")


def test_every_command_route_takes_the_fast_path() -> None:
    routers = [module.router for module in (products, stock, orders, ops, health)]
    paths = {route.route.path for route in fast_routes(routers, command_runner)}
    prefixes = ("/api/v1/products", "/api/v1/stock/", "/api/v1/orders")
    assert len(paths) == 9 and all(path.startswith(prefixes) for path in paths)


def test_routes_reading_more_than_path_and_body_are_left_to_fastapi() -> None:
    router = APIRouter()

    @router.post("/with-header")
    async def with_header(body: RenameProductRequest, run: CommandDep, x: str = Header()) -> None:
        """Reads a header parameter of its own."""

    @router.post("/with-query")
    async def with_query(body: RenameProductRequest, run: CommandDep, page: int = 1) -> None:
        """Reads a query parameter."""

    @router.put("/not-a-post")
    async def not_a_post(body: RenameProductRequest, run: CommandDep) -> None:
        """Another method."""

    @router.post("/no-runner")
    async def no_runner(body: RenameProductRequest) -> None:
        """No command runner."""

    assert fast_routes([router], command_runner) == []
    routes = [route for route in router.routes if isinstance(route, APIRoute)]
    assert len(routes) == 4 and all(fast_route(route, command_runner) is None for route in routes)


def small_app(settings: Settings, fast: bool) -> FrontedFastAPI:
    """A command API of two routes of the fast path's shape: one answers, one has a bug."""
    router = APIRouter()

    @router.post("/ok")
    async def answers(body: RenameProductRequest, run: CommandDep) -> JSONResponse:
        """Answers with the name it was given."""
        return JSONResponse({"name": body.name}, 201)

    @router.post("/bug")
    async def fails(body: RenameProductRequest, run: CommandDep) -> None:
        """Raises what no handler knows."""
        raise RuntimeError("a bug")

    app = FrontedFastAPI()
    errors.install(app)
    app.include_router(router)
    app.state.settings, app.state.repository = settings, None  # the routes use neither
    app.state.verifier = settings.token_verifier()
    app.front = front(app, [router], settings.model_copy(update={"command_fast_path": fast}))
    return app


async def test_a_bug_is_answered_as_fastapi_answers_it_and_reaches_the_server(
    settings: Settings, auth: Auth
) -> None:
    answers = []
    for fast in (True, False):
        transport = httpx.ASGITransport(app=small_app(settings, fast), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.post("/bug", json={"name": "x"}, headers=auth())
        assert response.headers["x-request-id"]
        answers.append(normal(response, "-"))
    assert answers[0] == answers[1] and answers[0][0] == 500
    assert '"code":"internal"' in answers[0][1]
    transport = httpx.ASGITransport(app=small_app(settings, True))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        with pytest.raises(RuntimeError, match="a bug"):  # on to the server, which logs it
            await client.post("/bug", json={"name": "x"}, headers=auth())


async def test_requests_go_through_fastapi_while_it_traces_them(
    settings: Settings, auth: Auth
) -> None:
    app = small_app(settings, True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for traced, taken in ((True, 0), (False, 1)):
            app.state.traced = traced
            before = served("served")
            response = await client.post("/ok", json={"name": "x"}, headers=auth())
            assert (response.status_code, response.json()) == (201, {"name": "x"})
            assert served("served") - before == taken
