"""Property-based requests from both OpenAPI schemas against real servers: never a 5xx, and
every answer is one the schema documents (status code, content type, body shape)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.auth import SCOPES, mint_token
from core.settings import Settings
from tests.conftest import JWT_SECRET
from tests.reliability.faults import process_env
from tests.support.processes import uvicorn_server


@schemathesis.check
def no_server_error_but_a_documented_503(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except 503 + Retry-After: the documented "not fresh yet / store down" answer."""
    if response.status_code == 503 and "retry-after" in response.headers:
        return None
    return not_a_server_error(ctx, response, case)  # type: ignore[no-any-return]


CHECKS = [
    no_server_error_but_a_documented_503,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Deterministic and bounded: the same examples on every run, a few seconds per schema.
FUZZ = hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def _env(settings: Settings) -> dict[str, str]:
    env = process_env(settings) | {"JWT_SECRET": JWT_SECRET, "ORDERTRAIL_ENV": "test"}
    # Generated X-Min-Position tokens are mostly ahead of the store: answer 503 quickly.
    # Likewise a feed long-poll after such a token: the wait is capped to keep the run short.
    env |= {"FEED_MAX_WAIT_SECONDS": "0.05", "SSE_MAX_SECONDS": "0.5"}  # and streams end soon
    return env | {"LOG_LEVEL": "WARNING", "MIN_POSITION_WAIT_SECONDS": "0.05"}


@pytest.fixture(scope="session")
def api_servers(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Both APIs as uvicorn child processes on the run's stores."""
    logs: Path = tmp_path_factory.mktemp("schema-servers")
    with (
        uvicorn_server("command_api.main:app", _env(settings), logs / "command.log") as command,
        uvicorn_server("query_api.main:app", _env(settings), logs / "query.log") as query,
    ):
        yield {"command": command, "query": query}


@pytest.fixture(scope="session")
def command_schema(api_servers: dict[str, str]) -> Any:
    """The command API's published schema."""
    return schemathesis.openapi.from_url(api_servers["command"] + "/openapi.json")


@pytest.fixture(scope="session")
def query_schema(api_servers: dict[str, str]) -> Any:
    """The query API's published schema."""
    return schemathesis.openapi.from_url(api_servers["query"] + "/openapi.json")


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'fuzzer', list(SCOPES))}"}


def fuzz(schema: Any) -> list[str]:
    """Run every operation of `schema` with generated requests; the operations it covered."""
    covered = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=_headers(), checks=CHECKS)

        check()
        covered.append(operation.label)
    return covered


def test_command_api_answers_as_its_schema_says(command_schema: Any) -> None:
    """Generated commands (valid and not) get documented answers, never a 5xx."""
    covered = fuzz(command_schema)
    assert len(covered) >= 15, covered  # every command, ops and feed route, not a subset


def test_query_api_answers_as_its_schema_says(query_schema: Any) -> None:
    """Generated queries (valid and not) get documented answers, never a 5xx."""
    covered = fuzz(query_schema)
    assert len(covered) >= 11, covered
