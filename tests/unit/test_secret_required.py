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


EXAMPLE_SECRET = "change-me-to-a-long-random-secret"  # .env.example's placeholder


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (EXAMPLE_SECRET, "placeholder"),
        (" ChangeMe ", "placeholder"),
        ("secret", "placeholder"),
        ("s" * 31, "at least 32 bytes"),
        ("é" * 15, "at least 32 bytes"),  # 30 bytes in UTF-8: counted in bytes, not letters
    ],
)
@pytest.mark.parametrize("environment", ["prod", "test"])
def test_a_placeholder_or_short_secret_is_refused_outside_dev(
    secret: str, says: str, environment: str
) -> None:
    settings = Settings(ORDERTRAIL_ENV=environment, JWT_SECRET=secret)  # type: ignore[call-arg]
    with pytest.raises(MissingSecret, match=f"JWT_SECRET.*{says}"):
        settings.require_secret()
    with pytest.raises(MissingSecret):
        create_command_app(settings)


def test_dev_mode_takes_any_secret_and_32_bytes_are_enough_elsewhere() -> None:
    Settings(ORDERTRAIL_ENV="dev", JWT_SECRET="secret").require_secret()  # type: ignore[call-arg]
    Settings(ORDERTRAIL_ENV="prod", JWT_SECRET="é" * 16).require_secret()  # type: ignore[call-arg]
