"""Every error code an answer can carry is listed (and so documented in both schemas)."""

from __future__ import annotations

import pytest

import domain.errors
from core.errors import DEFAULT_CODES, ERROR_CODES, ApiError, ErrorResponse


def test_every_domain_error_code_is_listed() -> None:
    classes = [
        value
        for value in vars(domain.errors).values()
        if isinstance(value, type) and issubclass(value, domain.errors.DomainError)
    ]
    assert len(classes) >= 8
    assert {cls.code for cls in classes} <= set(ERROR_CODES)


def test_defaults_and_the_schema_name_only_listed_codes() -> None:
    assert set(DEFAULT_CODES.values()) <= set(ERROR_CODES)
    description = ErrorResponse.model_json_schema()["properties"]["code"]["description"]
    for code in ERROR_CODES:
        assert f"`{code}`" in description


def test_an_unlisted_code_cannot_be_raised() -> None:
    with pytest.raises(ValueError, match="made_up_code"):
        ApiError(400, "x", "made_up_code")
