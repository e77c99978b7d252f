"""Tracing with OpenTelemetry, configured by the standard OTEL_* variables and off without them.

Spans: HTTP requests (FastAPI's own instrumentation, on once a provider is set), appends,
projection batches and the events in them, fulfilment steps, and every PostgreSQL (asyncpg)
and MongoDB (PyMongo) call. A command's trace context is stored in its events' metadata
(`traceparent`, W3C), so a worker's spans for an event join the trace of the command that
wrote it, across the store and the queue, however much later the worker reads it.

Off, none of this costs anything but a flag test: no provider, no instrumentation, no
metadata.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind

log = logging.getLogger(__name__)
TRACER_NAME = "ordertrail"
# The W3C trace-context fields a command leaves in its events' metadata.
CONTEXT_FIELDS = ("traceparent", "tracestate")


class _State:
    enabled = False


def enabled() -> bool:
    """Whether this process traces."""
    return _State.enabled


def wanted(environ: Mapping[str, str]) -> list[str]:
    """The exporters OTEL_* asks for: none unless OTEL_TRACES_EXPORTER or an OTLP endpoint is
    set, and none if OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if not named and not endpoint:
        return []
    names = [name.strip().lower() for name in (named or "otlp").split(",") if name.strip()]
    return [name for name in names if name != "none"]


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Trace as the OTEL_* variables say (exporters `otlp` over HTTP/protobuf, `console`);
    False, and nothing set up, when they ask for nothing. OTEL_SERVICE_NAME, if set, names
    the service; else `service_name`."""
    environ = os.environ if environ is None else environ
    if _State.enabled:
        return True  # once per process: the global provider cannot be replaced
    exporters: list[SpanExporter] = []
    for name in wanted(environ):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
                log.warning("OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported")
            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout from OTEL_*
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console)", name)
    if not exporters:
        return False
    install([BatchSpanProcessor(exporter) for exporter in exporters], service_name, environ)
    return True


def install(
    processors: list[SpanProcessor], service_name: str, environ: Mapping[str, str] | None = None
) -> None:
    """Set the global tracer provider with `processors` and instrument the database drivers
    (tests give an in-memory exporter's processor)."""
    environ = os.environ if environ is None else environ
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; ours is a default.
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    # Imported here: instrumenting patches the drivers, which only a tracing process wants.
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    PymongoInstrumentor().instrument()  # before any client exists: listeners are read then
    _State.enabled = True


def tracer() -> trace.Tracer:
    """This project's tracer."""
    return trace.get_tracer(TRACER_NAME)


def inject(metadata: MutableMapping[str, Any]) -> None:
    """Put the current trace context in an event's metadata (nothing when not tracing)."""
    if _State.enabled:
        propagate.inject(metadata)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span | None]:
    """A span under the current one (None, and no cost, when not tracing)."""
    if not _State.enabled:
        yield None
        return
    with tracer().start_as_current_span(name, attributes=_plain(attributes)) as current:
        yield current


@contextlib.contextmanager
def event_span(
    name: str,
    metadata: Mapping[str, Any],
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.CONSUMER,
) -> Iterator[Span | None]:
    """A span in the trace of the command that wrote an event (from its metadata), current
    inside the block: follow-up commands issued there join that trace too."""
    if not _State.enabled:
        yield None
        return
    carrier = {key: metadata[key] for key in CONTEXT_FIELDS if isinstance(metadata.get(key), str)}
    parent = propagate.extract(carrier) if carrier else otel_context.Context()
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=_plain(attributes or {})
    ) as current:
        yield current


def finished_span(name: str, seconds: float, **attributes: Any) -> None:
    """Record a span that just ended after `seconds`, under the current one (an append timed by
    the store, which knows nothing of tracing)."""
    if not _State.enabled:
        return
    end = time.time_ns()
    started = tracer().start_span(
        name, start_time=end - int(seconds * 1e9), attributes=_plain(attributes)
    )
    started.end(end_time=end)


class _Appended(Protocol):
    @property
    def stream_id(self) -> Any: ...

    @property
    def events(self) -> Sequence[Any]: ...


class _Position(Protocol):
    @property
    def token(self) -> str: ...


def append_span(streams: Sequence[_Appended], last: _Position, seconds: float) -> None:
    """An event store listener: the append as a span of the command (or fulfilment step)
    that made it."""
    if not _State.enabled:
        return
    finished_span(
        "append",
        seconds,
        **{
            "ordertrail.streams": ",".join(str(s.stream_id) for s in streams if s.events),
            "ordertrail.events": sum(len(s.events) for s in streams),
            "ordertrail.position": last.token,
        },
    )


def event_spans(
    name: str,
    events: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    start_ns: int,
    end_ns: int,
) -> None:
    """One span per event (its metadata, its attributes), each in the trace of the command
    that wrote it, spanning the batch that applied it: a projection applies events together."""
    if not _State.enabled:
        return
    for metadata, attributes in events:
        carrier = {k: metadata[k] for k in CONTEXT_FIELDS if isinstance(metadata.get(k), str)}
        parent = propagate.extract(carrier) if carrier else otel_context.Context()
        started = tracer().start_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER,
            start_time=start_ns,
            attributes=_plain(attributes),
        )
        started.end(end_time=end_ns)


def _plain(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as OpenTelemetry takes them (str, bool, int, float)."""
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in attributes.items()
        if value is not None
    }
