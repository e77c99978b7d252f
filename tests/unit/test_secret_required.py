"""No default signing secret outside dev mode: the APIs refuse to start without one."""

from __future__ import annotations

import pytest

from command_api.app import create_app as create_command_app
from core.settings import MissingSecret, Settings
from query_api.app import create_app as create_query_app


@pytest.mark.parametrize("create", [create_command_app, create_query_app])
def test_an_api_without_jwt_secret_refuses_to_start_outside_dev(create: object) -> None:
    settings = Settings(ORDERTRAIL_ENV="prod", JWT_SECRET=None)  # type: ignore[call-arg]
    with pytest.raises(MissingSecret):
        create(settings)  # type: ignore[operator]


def test_dev_mode_may_run_without_one_and_a_given_secret_is_used() -> None:
    assert Settings(ORDERTRAIL_ENV="dev", JWT_SECRET=None).secret  # type: ignore[call-arg]
    given = Settings(ORDERTRAIL_ENV="prod", JWT_SECRET="x" * 32)  # type: ignore[call-arg]
    assert given.secret == "x" * 32
