"""Command routes served straight from FastAPI's route table, without its per-request dispatch.

A command request always takes the same steps: match the path, validate the path parameters and
the JSON body, build the CommandRunner, call the endpoint. FastAPI's generic dispatch of those
steps (router walk, dependency solving, exception wrappers) was about a third of a command's CPU
time under the benchmark's command mix (py-spy). This middleware takes them directly for routes
whose shape it knows, calling the very endpoint and dependency FastAPI would call and answering
their errors with the app's own exception handlers. A request it cannot take whole (another
route, another content type, a body or path parameter that does not validate) goes on to FastAPI
untouched, so every refusal of a malformed request is FastAPI's own answer.

It stands in front of FastAPI's middleware stack (FrontedFastAPI), not inside it: the stack's
generic layers (telemetry dispatch, the 500 wrapper, body-limit and exception wrappers around
`send`) cost another tenth of a command's CPU, and the fast path does their work itself: a bug
is answered by the app's own 500 handler and then raised to the server, as Starlette's
ServerErrorMiddleware does. While FastAPI's native OpenTelemetry instrumentation is on, every
request goes through FastAPI so that it is traced.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, TypeGuard

import orjson
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from core.http import read_body, replay
from core.metrics import FAST_PATH, labelled

Dependency = Callable[[Request], Awaitable[Any]]
# As Starlette keeps them: a handler may be a plain function or a coroutine function.
ExceptionHandler = Callable[[Request, Any], Any]


@dataclass(frozen=True)
class FastRoute:
    """A POST route whose endpoint takes path parameters, one JSON model and one dependency."""

    route: APIRoute
    body_name: str
    body_model: type[BaseModel]
    dependency_name: str
    dependency: Dependency

    def arguments(self, path_params: Mapping[str, Any], body: bytes) -> dict[str, Any] | None:
        """The endpoint's arguments but the dependency, or None if any of them is invalid."""
        values: dict[str, Any] = {}
        for field in self.route.dependant.path_params:  # each one as FastAPI validates it
            value, errors = field.validate(path_params.get(field.alias), loc=("path", field.alias))
            if errors:
                return None
            values[field.name] = value
        try:
            # Parsed as FastAPI parses it (JSON to Python, then the model); orjson is the stricter
            # parser (no NaN, no lone surrogates), so what it refuses goes on to FastAPI.
            values[self.body_name] = self.body_model.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        return values


def fast_routes(routers: Iterable[APIRouter], dependency: Dependency) -> list[FastRoute]:
    """The routes of `routers` that the fast path can serve with `dependency`."""
    routes = (r for router in routers for r in router.routes if isinstance(r, APIRoute))
    return [found for route in routes if (found := fast_route(route, dependency)) is not None]


def fast_route(route: APIRoute, dependency: Dependency) -> FastRoute | None:
    """`route` as a FastRoute, or None if it reads anything but path, body and `dependency`."""
    endpoint = route.dependant
    if route.methods != {"POST"} or len(endpoint.body_params) != 1:
        return None
    if len(endpoint.dependencies) != 1 or _reads_more(endpoint, path=True):
        return None
    if endpoint.request_param_name or endpoint.http_connection_param_name:
        return None
    sub, body = endpoint.dependencies[0], endpoint.body_params[0]
    model = body.field_info.annotation
    if sub.call is not dependency or sub.dependencies or sub.body_params or _reads_more(sub):
        return None
    if getattr(body.field_info, "embed", False) or not _is_model(model):
        return None
    return FastRoute(route, body.name, model, str(sub.name), dependency)


def _reads_more(dependant: Dependant, path: bool = False) -> bool:
    """Whether a dependant takes parameters other than the request (and path ones, if allowed)."""
    params = [dependant.query_params, dependant.header_params, dependant.cookie_params]
    special = [
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.websocket_param_name,
        dependant.security_scopes_param_name,
    ]
    return any(params) or any(special) or (bool(dependant.path_params) and not path)


def _is_model(annotation: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class CommandFastPath:
    """ASGI middleware that serves FastRoutes itself and passes every other request on."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Iterable[FastRoute],
        handlers: Mapping[Any, ExceptionHandler],
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.app, self.routes, self.handlers = app, tuple(routes), handlers
        self.active = active

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a matching, valid command; hand anything else to the app unchanged."""
        found = self._match(scope) if _json_post(scope) and self.active() else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, child = found
        body = await read_body(receive, sys.maxsize, None) or b""
        arguments = route.arguments(child["path_params"], body)
        if arguments is None:
            labelled(FAST_PATH, "deferred").inc()
            await self.app(scope, replay(body), send)
            return
        scope.update(child)
        request = Request(scope, replay(body))
        try:
            response = await self._respond(route, request, arguments)
        except Exception as exc:
            # A bug: the app's 500 answer, then the exception on to the server, which logs it.
            await (await self._server_error(request, exc))(scope, receive, send)
            raise
        await response(scope, receive, send)
        labelled(FAST_PATH, "served").inc()

    def _match(self, scope: Scope) -> tuple[FastRoute, Scope] | None:
        # Each route's regex first: matches() builds a child scope even to say no. (Behind a
        # root_path the raw path is not the route path: leave that to matches() alone.)
        path = None if scope.get("root_path") else scope["path"]
        for route in self.routes:
            if path is not None and route.route.path_regex.match(path) is None:
                continue
            match, child = route.route.matches(scope)
            if match is Match.FULL:
                return route, child
        return None

    async def _respond(
        self, route: FastRoute, request: Request, arguments: dict[str, Any]
    ) -> Response:
        try:
            arguments[route.dependency_name] = await route.dependency(request)
            response: Response = await route.route.endpoint(**arguments)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # a bug: __call__ answers it as ServerErrorMiddleware would
            return await _call(handler, request, exc)
        return response

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        """What Starlette's ServerErrorMiddleware answers: the app's 500 handler, else plain."""
        handler = self.handlers.get(500) or self.handlers.get(Exception)
        if handler is None:
            return PlainTextResponse("Internal Server Error", status_code=500)
        return await _call(handler, request, exc)

    def _handler(self, exc: Exception) -> ExceptionHandler | None:
        """The app's handler for `exc`, picked as Starlette's ExceptionMiddleware picks it."""
        if isinstance(exc, HTTPException) and exc.status_code in self.handlers:
            return self.handlers[exc.status_code]
        for cls in type(exc).__mro__:
            # Exception's own handler belongs to the outermost middleware, not to this layer.
            if cls is not Exception and cls in self.handlers:
                return self.handlers[cls]
        return None


async def _call(handler: ExceptionHandler, request: Request, exc: Exception) -> Response:
    answer = handler(request, exc)
    return await answer if isawaitable(answer) else answer  # type: ignore[no-any-return]


class FrontedFastAPI(FastAPI):
    """FastAPI whose HTTP requests meet `front` before its own middleware stack."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP through `front` once it is set; the rest (lifespan) as FastAPI serves it."""
        if self.front is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.front(scope, receive, send)

    async def behind(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own handling: its middleware stack, router and exception handlers."""
        await super().__call__(scope, receive, send)


def natively_traced(app: FastAPI) -> bool:
    """Whether FastAPI's native OpenTelemetry instrumentation is on (providers configured)."""
    telemetry = getattr(app, "_native_telemetry", None)  # FastAPI >= 0.165
    return bool(telemetry is not None and telemetry.enabled())


def _json_post(scope: Scope) -> bool:
    """A POST whose Content-Type is application/json (FastAPI decides every other case)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False
