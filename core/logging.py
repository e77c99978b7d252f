"""Logging: one structured format for the APIs, the workers and the CLI; never a token or secret.

`LOG_FORMAT=json` writes one JSON object per line, for a log pipeline; `console` writes one
readable line. Either way a line carries what is known where it was logged: the request id,
correlation and causation ids, actor, stream id and position. Code binds those with `bound()`
or `bind()` (context variables: they follow a request or a batch through awaits, and never
leak into another's), and every line logged meanwhile carries them, uvicorn's access log
included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import orjson

LogFormat = Literal["json", "console"]
# The fields a line may carry from its context, in the order the console shows them.
CONTEXT_FIELDS = (
    "request_id",
    "correlation_id",
    "causation_id",
    "actor",
    "stream_id",
    "position",
    "event_type",
    "subscriber",
)
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar(
    "ordertrail_log_context", default=MappingProxyType({})
)
# uvicorn's access record: (client address, method, path, HTTP version, status).
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")
# Loggers that install handlers of their own: routed through ours instead, in our format.
_FOREIGN = ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq")
_HANDLER_NAME = "ordertrail"


def bind(**fields: Any) -> Token[Mapping[str, Any]]:
    """Add fields to every line logged from here on in this context; a token for unbind()."""
    current = _CONTEXT.get()
    return _CONTEXT.set({**current, **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: Token[Mapping[str, Any]]) -> None:
    """Forget what the bind() that gave `token` added."""
    _CONTEXT.reset(token)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Fields on every line logged inside the block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def context() -> Mapping[str, Any]:
    """The fields bound in this context."""
    return _CONTEXT.get()


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (a field set by `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record."""
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(zip(_ACCESS_FIELDS, record.args, strict=False))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then the context fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line (plus a traceback, if any)."""
        text = super().format(record)
        fields = [
            f"{key}={getattr(record, key)}"
            for key in CONTEXT_FIELDS
            if getattr(record, key, None) is not None
        ]
        if not fields:
            return text
        head, newline, rest = text.partition("\n")
        return f"{head} [{' '.join(fields)}]{newline}{rest}"


def default_format(environment: str) -> LogFormat:
    """Console for a developer (ORDERTRAIL_ENV=dev), JSON for everything else."""
    return "console" if environment == "dev" else "json"


def configure_logging(level: str = "INFO", fmt: LogFormat = "console") -> None:
    """Send every logger's records to stderr in `fmt`, carrying the context fields."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        # Ours from an earlier call, and plain stream handlers (dramatiq's worker installs one:
        # every line came out twice); pytest's capture handlers stay.
        if old.get_name() == _HANDLER_NAME or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _FOREIGN:
        foreign = logging.getLogger(name)
        if not foreign.handlers:
            continue  # nothing of its own (or switched off, as `uvicorn --no-access-log` does)
        for old in list(foreign.handlers):
            foreign.removeHandler(old)
        foreign.propagate = True


def configure_from_environment(default_level: str = "WARNING") -> None:
    """For the CLI, before settings are read (they may be what is wrong): LOG_LEVEL (default
    WARNING: its output is its report), LOG_FORMAT, ORDERTRAIL_ENV."""
    fmt = os.environ.get("LOG_FORMAT", "").strip().lower()
    style: LogFormat = (
        fmt
        if fmt in ("json", "console")
        else default_format(os.environ.get("ORDERTRAIL_ENV", "prod"))  # type: ignore[assignment]
    )
    level = os.environ.get("LOG_LEVEL", "").strip().upper() or default_level
    if level not in logging.getLevelNamesMapping():
        level = default_level
    configure_logging(level, style)
