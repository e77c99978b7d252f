"""The oldest supported PostgreSQL is enforced by the migrations, with a message naming both."""

from __future__ import annotations

import pytest

from eventstore.schema import MIN_SERVER_VERSION, UnsupportedServer, require_supported


@pytest.mark.parametrize("version", [120018, 130010, 140013])
def test_an_older_server_is_refused_naming_both_versions(version: int) -> None:
    with pytest.raises(UnsupportedServer) as refused:
        require_supported(version)
    assert "PostgreSQL 15 or newer" in str(refused.value)
    assert f"{version // 10000}.{version % 10000}" in str(refused.value)


@pytest.mark.parametrize("version", [MIN_SERVER_VERSION, 150020, 160006, 180001])
def test_the_minimum_and_newer_are_accepted(version: int) -> None:
    require_supported(version)
