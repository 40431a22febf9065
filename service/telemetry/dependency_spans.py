"""Child spans for what a request waits on: one CLIENT span per SQL statement and per
Redis command, with the database semantic-convention attributes (db.system.name,
db.operation.name, db.collection.name, db.query.summary, server.address/port) and never
a parameter value. OTEL_INSTRUMENT_DEPENDENCIES=false leaves them out.

Written here rather than taken from opentelemetry-instrumentation-sqlalchemy/-redis, and
made with the lean span of span.py rather than the SDK's Span. Decided by `make bench` on
/api/items/{id} (a cache hit: one Redis GET span per request), full with each kind of
dependency span side by side in one run (bench/README.md, "Dependency spans"): CPU per
request above full without dependency spans, ours 36 us, ours as SDK spans 157 us, the
contrib instrumentations 201 us (a loaded 2-vCPU machine: every figure about 1.7 times a
quiet run's). The contrib packages also put the statement text in the span and wrap
every call of the client; these are two event hooks and a context manager."""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import ProxyTracer, SpanContext, SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Engine

from service.telemetry.current_span import IS_VALID, current_context, current_span_context
from service.telemetry.span import ServerSpanFactory

SCOPE_NAME = "service.dependencies"
_tracer = trace.get_tracer(SCOPE_NAME)
# "SELECT ... FROM items ...", "INSERT INTO items ...", "UPDATE items ...": the operation is
# the first keyword, the collection the table after FROM, INTO, UPDATE or TABLE.
_OPERATION = re.compile(r"\s*(\w+)")
_COLLECTION = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+\"?([\w.]+)\"?", re.IGNORECASE)
_SUMMARY_CACHE_SIZE = 512
_summaries: dict[str, tuple[str, str | None]] = {}
# Where a statement's span waits between before_ and after_cursor_execute.
_SPAN_KEY = "_otel_span"
# The lean span's factory for the SDK tracer behind _tracer: (that tracer, its factory).
_lean: tuple[object, ServerSpanFactory] | None = None
_CLIENT = SpanKind.CLIENT  # read once: an Enum class attribute costs a lookup per use


def start_client_span(
    name: str,
    attributes: dict[str, Any],
    current: Context | None = None,
    parent: SpanContext | None = None,
) -> trace.Span:
    """A CLIENT span under the current one (`current`, and the span context of its
    span as `parent`, when the caller has them). With the SDK's tracer it is the lean
    span of span.py (the SDK's sampler, ids, limits and processors; attributes taken as
    they are: they are valid here), which `make bench` measured at a fraction of the SDK
    Span's cost; with any other tracer, that tracer's span."""
    global _lean
    tracer: Any = _tracer
    if type(tracer) is ProxyTracer:
        tracer = tracer._tracer  # the provider's tracer once there is a provider
    if _lean is None or _lean[0] is not tracer:
        if not isinstance(tracer, SdkTracer):
            return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)  # type: ignore[no-any-return]
        _lean = (tracer, ServerSpanFactory(tracer, SCOPE_NAME))
    if current is None:
        current = current_context()
    return _lean[1].start(name, current, attributes, _CLIENT, parent)


def summarize(statement: str) -> tuple[str, str | None]:
    """(operation, collection) of a SQL statement: ("SELECT", "items"). Statements repeat,
    so the answers are kept (bounded)."""
    found = _summaries.get(statement)
    if found is None:
        operation = _OPERATION.match(statement)
        collection = _COLLECTION.search(statement)
        found = (
            operation.group(1).upper() if operation else "SQL",
            collection.group(1) if collection else None,
        )
        if len(_summaries) >= _SUMMARY_CACHE_SIZE:
            _summaries.clear()
        _summaries[statement] = found
    return found


def instrument_engine(engine: Engine) -> None:
    """A span per statement of `engine` (pass an AsyncEngine's sync_engine). SQLAlchemy runs
    the hooks in the request's context (its greenlets carry the caller's contextvars), so
    each span is a child of the request's span."""
    url = engine.url
    system = "postgresql" if url.get_backend_name() == "postgresql" else url.get_backend_name()
    server: dict[str, Any] = {"db.system.name": system}
    if url.host:
        server["server.address"] = url.host
        server["server.port"] = url.port or 5432
    if url.database and system != "sqlite":
        server["db.namespace"] = url.database

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if context is None or not in_a_trace():
            return
        operation, collection = summarize(statement)
        summary = f"{operation} {collection}" if collection else operation
        attributes = {**server, "db.operation.name": operation, "db.query.summary": summary}
        if collection:
            attributes["db.collection.name"] = collection
        setattr(context, _SPAN_KEY, start_client_span(summary, attributes))

    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        span = getattr(context, _SPAN_KEY, None)
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, _SPAN_KEY, None)
        if span is not None:
            mark_failed(span, exception_context.original_exception)
            span.end()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)


def in_a_trace() -> bool:
    """Dependency spans are children only: work outside a traced request (readiness
    probes, migrations at start-up) would otherwise start a new trace per statement."""
    return current_span_context()[IS_VALID]


def mark_failed(span: trace.Span, error: BaseException, fallback: str | None = None) -> None:
    """The span's error, by type (never the message: it may hold values), and what the
    caller did instead (`fallback`: e.g. the cache fell back to the database)."""
    span.set_attribute("error.type", type(error).__name__)
    if fallback is not None:
        span.set_attribute("app.cache.fallback", fallback)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


class RedisSpan:
    """A span for one Redis command (a non-recording one outside a trace). An error that
    escapes is recorded by type; one the caller handles it marks itself (mark_failed).
    A class, not a generator-based context manager: a third less per command (the items
    route's cache hit is one command per request)."""

    __slots__ = ("span",)

    def __init__(self, command: str, server: dict[str, Any]) -> None:
        current = current_context()
        parent = current_span_context(current)
        if parent[IS_VALID]:  # in a trace
            attributes = {"db.system.name": "redis", "db.operation.name": command, **server}
            self.span = start_client_span(command, attributes, current, parent)
        else:
            self.span = trace.INVALID_SPAN

    def __enter__(self) -> trace.Span:
        return self.span

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if error is not None:
            mark_failed(self.span, error)
        self.span.end()
