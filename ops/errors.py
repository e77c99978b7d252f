"""How the CLI fails: one line on stderr and an exit code a script can act on.

0 done; 1 the verb's own bad news (holes found, events still failing); 2 bad arguments or
settings; 3 a dependency (PostgreSQL, MongoDB, Redis) is unreachable; 4 anything else.
ORDERTRAIL_TRACEBACK=1 shows the full traceback instead of the line.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator

import asyncpg
import pymongo.errors
import redis.exceptions
import typer
from dramatiq.errors import BrokerConnectionError
from pydantic import ValidationError

from core.logging import configure_from_environment
from core.settings import MissingSecret
from eventstore.schema import UnsupportedServer

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNEXPECTED = 1, 2, 3, 4
TRACEBACK_ENV = "ORDERTRAIL_TRACEBACK"

# Errors that mean "could not talk to a server", whichever library raised them.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, unresolvable host, reset (TimeoutError included)
    asyncpg.PostgresConnectionError,
    asyncpg.InvalidAuthorizationSpecificationError,  # wrong password or role
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    pymongo.errors.ConnectionFailure,
    pymongo.errors.ServerSelectionTimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BrokerConnectionError,
)
# The module a failure came from names the dependency, and the setting that points at it.
DEPENDENCIES = {
    "asyncpg": "PostgreSQL (DATABASE_URL)",
    "sqlalchemy": "PostgreSQL (DATABASE_URL)",
    "pymongo": "MongoDB (MONGODB_URL)",
    "redis": "Redis (REDIS_URL)",
    "dramatiq": "Redis (REDIS_URL)",
}
MAX_LINE = 240


def run_cli(app: typer.Typer) -> None:
    """Run the CLI; turn what it raises into one line and an exit code."""
    configure_from_environment()
    try:
        app()
    except UnsupportedServer as exc:
        _fail(EXIT_UNREACHABLE, f"unusable PostgreSQL (DATABASE_URL): {exc}", exc)
    except (ValidationError, MissingSecret) as exc:
        _fail(EXIT_USAGE, f"invalid settings: {_settings_text(exc)}", exc)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if any(isinstance(link, asyncpg.UndefinedTableError) for link in _chain(exc)):
            message = "PostgreSQL (DATABASE_URL) has no ordertrail schema: run `ordertrail migrate`"
            _fail(EXIT_UNREACHABLE, message, exc)
        if (cause := unreachable_cause(exc)) is not None:
            _fail(EXIT_UNREACHABLE, f"cannot reach {dependency_of(exc)}: {_line(cause)}", exc)
        _fail(EXIT_UNEXPECTED, f"{type(exc).__name__}: {_line(exc)}", exc)


def settings_error(exc: ValidationError) -> int:
    """Report invalid settings in one line per field; the exit code to use (2)."""
    typer.echo(f"error: invalid settings: {_settings_text(exc)}", err=True)
    return EXIT_USAGE


def unreachable_cause(exc: BaseException) -> BaseException | None:
    """The connection failure behind `exc` (itself, or one it was raised from), if any."""
    for link in _chain(exc):
        if isinstance(link, UNREACHABLE):
            return link
    return None


def dependency_of(exc: BaseException) -> str:
    """Which server a failure concerns, from the modules it was raised in."""
    for link in _chain(exc):
        for module in [type(link).__module__, *_frame_modules(link)]:
            root = module.partition(".")[0]
            if root in DEPENDENCIES:
                return DEPENDENCIES[root]
    return "a dependency"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _frame_modules(exc: BaseException) -> list[str]:
    # Innermost first: the library that made the call is nearer the raise than our code.
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    return [str(frame.f_globals.get("__name__", "")) for frame in reversed(frames)]


def _settings_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
    return _line(exc)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    # PyMongo appends its timeouts and a topology dump to the reason: keep the reason.
    text = text.split(" (configured timeouts")[0]
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def _fail(code: int, message: str, exc: BaseException) -> None:
    if os.environ.get(TRACEBACK_ENV, "").strip().lower() in {"1", "true", "yes"}:
        traceback.print_exception(exc)
    else:
        typer.echo(f"error: {message}", err=True)
    sys.exit(code)
