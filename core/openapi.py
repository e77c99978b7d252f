"""OpenAPI for what the hot dependencies read straight from the request.

Every parameter and nested dependency costs FastAPI a resolution step on each request: for a
command, five nested dependencies were a third of its CPU time. So the dependencies on every
route read their headers and the bearer token themselves, and say here what FastAPI would
otherwise have documented; `document` adds it to each route that depends on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
_DOCUMENTED: dict[Callable[..., Any], tuple[list[dict[str, Any]], bool]] = {}


def documents(
    *, parameters: list[dict[str, Any]] | None = None, bearer: bool = False
) -> Callable[[F], F]:
    """Register the header `parameters` (and the bearer scheme) a dependency reads itself."""

    def register(dependency: F) -> F:
        _DOCUMENTED[dependency] = (list(parameters or []), bearer)
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
    """The header parameters and security of the registered dependencies of one route."""
    parameters: dict[str, dict[str, Any]] = {}
    bearer = False
    for call in _dependencies(dependant):
        documented, needs_bearer = _DOCUMENTED.get(call, ([], False))
        parameters.update((p["name"].lower(), p) for p in documented)
        bearer |= needs_bearer
    extra: dict[str, Any] = {"parameters": list(parameters.values())} if parameters else {}
    return {**extra, "security": [{BEARER_SCHEME_NAME: []}]} if bearer else extra


def declare_bearer(app: FastAPI) -> None:
    """Name the bearer scheme in the components its operations' `security` refers to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema: dict[str, Any] = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes.setdefault(BEARER_SCHEME_NAME, BEARER_SCHEME)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
