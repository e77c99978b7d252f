"""What generated clients rely on in both schemas: stable operationIds, every error as
{detail, code}, and the response headers the APIs send."""

from __future__ import annotations

from typing import Any

import pytest

from command_api.app import create_app
from core.settings import Settings
from query_api.app import create_app as create_query_app

SETTINGS = Settings(JWT_SECRET="schema-only-" + "x" * 32, ORDERTRAIL_ENV="test")  # type: ignore[call-arg]
COMMAND, QUERY = create_app(SETTINGS).openapi(), create_query_app(SETTINGS).openapi()
# Pinned: renaming an operation breaks every generated client, so it must be deliberate.
COMMAND_OPERATIONS = {
    "registerProduct",
    "renameProduct",
    "repriceProduct",
    "discontinueProduct",
    "receiveStock",
    "adjustStock",
    "placeOrder",
    "cancelOrder",
    "shipOrder",
    "readFeed",
    "getHealth",
    "getReady",
    "getMetrics",
    "getStatus",
    "getStreamEvents",
    "startRebuild",
    "startReplay",
    "getJob",
    "listJobs",
    "listParked",
    "retryParkedEvents",
    "skipParkedEvent",
    "getStreamsBySku",
    "getAuditEntries",
}
QUERY_OPERATIONS = {
    "listProducts",
    "getProductBySku",
    "getProduct",
    "listStock",
    "getStockOf",
    "listOrders",
    "getOrder",
    "getSalesDaily",
    "getSalesDailySkus",
    "getTopProducts",
    "getOrderStatus",
    "getAudit",
    "liveOrder",
    "liveStock",
    "liveProduct",
    "liveSalesDaily",
    "liveOrderStatus",
    "getHealth",
    "getReady",
    "getMetrics",
}
ERROR_SCHEMAS = {
    "#/components/schemas/ErrorResponse",
    "#/components/schemas/ValidationErrorResponse",
}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of a schema."""
    return [(m, p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


@pytest.mark.parametrize(
    ("schema", "expected"), [(COMMAND, COMMAND_OPERATIONS), (QUERY, QUERY_OPERATIONS)]
)
def test_operation_ids_are_readable_unique_and_pinned(
    schema: dict[str, Any], expected: set[str]
) -> None:
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


@pytest.mark.parametrize("schema", [COMMAND, QUERY])
def test_every_error_is_detail_and_code(schema: dict[str, Any]) -> None:
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref in ERROR_SCHEMAS, (method, path, status)
            if status == "422":
                assert ref.endswith("ValidationErrorResponse"), (method, path)
    error = schema["components"]["schemas"]["ErrorResponse"]
    assert "code" in error["required"]
    assert "`insufficient_scope`" in error["properties"]["code"]["description"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.mark.parametrize("schema", [COMMAND, QUERY])
def test_every_answer_declares_its_headers(schema: dict[str, Any]) -> None:
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            headers = set(response.get("headers", {}))
            where = (method, path, status)
            assert "X-Request-ID" in headers, where
            if status == "503":
                assert "Retry-After" in headers, where
            if status == "401":
                assert "WWW-Authenticate" in headers, where
            command = method == "post" and path.split("/")[3] in ("products", "stock", "orders")
            if command and status.startswith("2"):
                assert {"ETag", "X-Position", "Idempotent-Replayed"} <= headers, where
            query = schema is QUERY and path.startswith("/api/v1/") and "/live/" not in path
            if query:
                assert "X-Read-Position" in headers, where
