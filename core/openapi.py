"""OpenAPI for what the hot dependencies read straight from the request.

Every parameter and nested dependency costs FastAPI a resolution step on each request: for a
command, five nested dependencies were a third of its CPU time. So the dependencies on every
route read their headers and the bearer token themselves, and say here what FastAPI would
otherwise have documented; `document` adds it to each route that depends on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel

BEARER_SCHEME_NAME = "HTTPBearer"
BEARER_SCHEME = {
    "type": "http",
    "description": "JWT (HS256) with `sub`, `scope`, `exp`",
    "scheme": "bearer",
}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Documented:
    """What a dependency reads and adds that FastAPI cannot see."""

    parameters: list[dict[str, Any]]
    bearer: bool
    # Response headers: on 2xx answers only, and on every answer of the route.
    success_headers: dict[str, dict[str, Any]]
    response_headers: dict[str, dict[str, Any]]


_DOCUMENTED: dict[Callable[..., Any], Documented] = {}
# Carried from a route's openapi_extra to its responses by finish_schema, then removed.
_SUCCESS_KEY, _ALWAYS_KEY = "x-success-headers", "x-response-headers"


def header(description: str, example: str | None = None) -> dict[str, Any]:
    """An OpenAPI response header: a string with a description."""
    schema: dict[str, Any] = {"type": "string"}
    if example is not None:
        schema["example"] = example
    return {"description": description, "schema": schema}


REQUEST_ID = {"X-Request-ID": header("This request's id (the client's, if valid, else new)")}
RETRY_AFTER = {"Retry-After": header("Seconds to wait before retrying", "1")}
WWW_AUTHENTICATE = {"WWW-Authenticate": header("The scheme to authenticate with", "Bearer")}


def documents(
    *,
    parameters: list[dict[str, Any]] | None = None,
    bearer: bool = False,
    success_headers: dict[str, dict[str, Any]] | None = None,
    response_headers: dict[str, dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Register the header `parameters` (and the bearer scheme) a dependency reads itself,
    and the headers it adds to its route's answers."""

    def register(dependency: F) -> F:
        _DOCUMENTED[dependency] = Documented(
            list(parameters or []),
            bearer,
            dict(success_headers or {}),
            dict(response_headers or {}),
        )
        return dependency

    return register


def model_headers(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A model's fields as optional header parameters, by alias."""
    properties = model.model_json_schema(by_alias=True)["properties"]
    parameters = []
    for name, schema in properties.items():
        parameter = {"name": name, "in": "header", "required": False, "schema": schema}
        if "description" in schema:
            parameter["description"] = schema["description"]
        parameters.append(parameter)
    return parameters


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependencies(sub)


def document(router: APIRouter) -> APIRouter:
    """Add to each route's OpenAPI what its registered dependencies read themselves."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.openapi_extra = {**(route.openapi_extra or {}), **_extra(route.dependant)}
    return router


def _extra(dependant: Dependant) -> dict[str, Any]:
    """The header parameters, security and answer headers of one route's dependencies."""
    parameters: dict[str, dict[str, Any]] = {}
    success: dict[str, dict[str, Any]] = {}
    always: dict[str, dict[str, Any]] = {}
    bearer = False
    for call in _dependencies(dependant):
        documented = _DOCUMENTED.get(call)
        if documented is None:
            continue
        parameters.update((p["name"].lower(), p) for p in documented.parameters)
        success.update(documented.success_headers)
        always.update(documented.response_headers)
        bearer |= documented.bearer
    extra: dict[str, Any] = {"parameters": list(parameters.values())} if parameters else {}
    if success:
        extra[_SUCCESS_KEY] = success
    if always:
        extra[_ALWAYS_KEY] = always
    return {**extra, "security": [{BEARER_SCHEME_NAME: []}]} if bearer else extra


def operation_id(route: APIRoute) -> str:
    """A readable, stable operationId: the endpoint's name in camelCase, a GET's led by `get`
    unless it already starts with a verb (listOrders, getOrder, registerProduct)."""
    words = route.name.split("_")
    if "GET" in (route.methods or ()) and words[0] not in _READ_VERBS:
        words.insert(0, "get")
    return words[0] + "".join(word.title() for word in words[1:])


_READ_VERBS = {"get", "list", "read", "live"}


def finish_schema(app: FastAPI, extra_schemas: dict[str, type[BaseModel]]) -> None:
    """Complete the app's schema: the bearer scheme, every answer's headers (X-Request-ID; the
    dependencies' own; Retry-After on 503; WWW-Authenticate on 401) and 422 as the APIs send it.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema: dict[str, Any] = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).setdefault(BEARER_SCHEME_NAME, BEARER_SCHEME)
        schemas = components.setdefault("schemas", {})
        for name, model in extra_schemas.items():
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(found.pop("$defs", {}))
            schemas[name] = found
        for operations in schema["paths"].values():
            for operation in operations.values():
                _finish_operation(operation)
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _finish_operation(operation: dict[str, Any]) -> None:
    success = operation.pop(_SUCCESS_KEY, {})
    always = operation.pop(_ALWAYS_KEY, {})
    for status, response in operation.get("responses", {}).items():
        headers = response.setdefault("headers", {})
        headers.update(REQUEST_ID)
        headers.update(always)
        if status.startswith("2"):
            headers.update(success)
        if status == "503":
            headers.update(RETRY_AFTER)
        if status == "401":
            headers.update(WWW_AUTHENTICATE)
        if status == "422":
            reference = {"$ref": "#/components/schemas/ValidationErrorResponse"}
            response["content"] = {"application/json": {"schema": reference}}
