"""ObservabilityMiddleware: what every request gets, in one pure-ASGI layer.

Its jobs, each a small function below (JOBS; the product runs them all, `make bench`
measures each alone, bench/README.md):
- request_id: the X-Request-ID kept when well formed, else generated; echoed with
  X-App-Version on the response;
- span: the server span. Health probes are not traced; the caller's trace is joined
  through the configured propagators (W3C traceparent by default; OTEL_PROPAGATORS
  applies); the stable HTTP semantic-convention attributes, http.response.status_code,
  and http.route and the span's name once routed. With the SDK's TracerProvider it is a
  ServerSpan (span.py), else the plain API's span;
- log_context: what log lines inside the request read: the request id and user
  contextvars, and the span made current (its trace_id and span_id; dependency spans
  take it as their parent);
- access_line: the request_completed line (access_log.py), and slow_request;
- metrics: the duration histogram and the active-requests gauge (metrics.py).
An unhandled exception becomes the JSON 500, recorded on the span and logged."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request import context
from service.request.context import PROBE_PREFIX
from service.request.errors import send_error
from service.request.request_id import accept_or_generate
from service.telemetry.access_log import MAX_UA_CHARS, log, log_request
from service.telemetry.current_span import attach_span, detach
from service.telemetry.metrics import AppMetrics
from service.telemetry.span import ServerSpanFactory

SCOPE_NAME = "service.http"
JOBS = frozenset({"request_id", "span", "log_context", "access_line", "metrics"})
_ERROR = Status(StatusCode.ERROR)
_NO_PARENT = Context()
_set_request_id = context.request_id.set
_set_user_id = context.user_id.set
_reset_request_id = context.request_id.reset
_reset_user_id = context.user_id.reset


def read_headers(
    headers: list[tuple[bytes, bytes]], propagation: frozenset[bytes]
) -> tuple[bytes | None, str | None, dict[str, str] | None]:
    """One scan of the request headers: (X-Request-ID, the full User-Agent, the
    propagation headers as a carrier); None for what did not come."""
    incoming_id = user_agent = carrier = None
    for name, value in headers:
        if name == b"x-request-id":
            incoming_id = value
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name in propagation:
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return incoming_id, user_agent, carrier


def set_response_status(span: Any, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(_ERROR)


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        slow_request_ms: int,
        metrics: AppMetrics | None = None,
        app_version: str | None = None,
        jobs: frozenset[str] = JOBS,
    ) -> None:
        unknown = jobs - JOBS
        if unknown:
            raise ValueError(f"unknown observability jobs {sorted(unknown)}; known: {sorted(JOBS)}")
        self.app = app
        self.slow_request_ms = slow_request_ms
        self.echo_id = "request_id" in jobs
        self.traced = "span" in jobs
        self.log_context = "log_context" in jobs
        self.access_line = "access_line" in jobs
        self.metrics = metrics if "metrics" in jobs else None
        # Which build answered, on every response (the drill counts them per version).
        self.version_header = (
            (b"x-app-version", app_version.encode("ascii")) if app_version else None
        )
        self.tracer = trace.get_tracer(SCOPE_NAME)
        self.spans: ServerSpanFactory | None = None
        # The request headers the configured propagators read (traceparent, tracestate,
        # baggage for the default W3C pair), as ASGI gives them: lower-case bytes.
        self.propagation_headers = frozenset(
            field.lower().encode("latin-1") for field in propagate.get_global_textmap().fields
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        incoming_id, user_agent, carrier = read_headers(scope["headers"], self.propagation_headers)
        request_id = accept_or_generate(incoming_id)
        # No propagation header: a new trace (what extracting from nothing gives).
        parent = propagate.extract(carrier) if carrier else _NO_PARENT
        span = None
        if self.traced and not scope["path"].startswith(PROBE_PREFIX):  # probes: no span
            span = self.start_span(scope, method, user_agent, parent)
        tokens = self.enter_log_context(request_id, span, parent) if self.log_context else None
        extra_headers = self.response_headers(request_id)
        metrics = self.metrics
        active = metrics.active(method) if metrics is not None else None
        if active is not None:
            active.inc()
        status = 500
        response_started = False
        route = ""

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                if extra_headers:
                    message["headers"] = [*message.get("headers", ()), *extra_headers]
                if span is not None:
                    set_response_status(span, status)
            await send(message)

        started = perf_counter()
        try:
            try:
                await self.app(scope, receive, send_observed)
            except Exception as exc:
                status = 500
                await self.answer_unhandled(scope, send, span, exc, response_started, extra_headers)
            finally:
                seconds = perf_counter() - started
                route = route_of(scope)
                if active is not None:
                    active.dec()
                    metrics.observe_request(method, route, status, seconds)  # type: ignore[union-attr]
                if self.access_line:
                    log_request(
                        scope,
                        status,
                        round(seconds * 1000, 2),
                        user_agent[:MAX_UA_CHARS] if user_agent else "",
                        self.slow_request_ms,
                    )
                if tokens is not None:
                    _reset_request_id(tokens[0])
                    _reset_user_id(tokens[1])
        except Exception as exc:  # what the SDK's start_as_current_span records
            if span is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            if span is not None:
                self.end_span(span, route, method, tokens)

    def response_headers(self, request_id: str) -> list[tuple[bytes, bytes]]:
        """X-Request-ID and X-App-Version (the request_id job)."""
        if not self.echo_id:
            return []
        header = (b"x-request-id", request_id.encode())
        return [header] if self.version_header is None else [header, self.version_header]

    def start_span(
        self, scope: Scope, method: str, user_agent: str | None, parent: Context
    ) -> trace.Span:
        """The server span: a child of the caller's span in `parent`, if any."""
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        if user_agent is not None:
            attributes["user_agent.original"] = user_agent
        spans = self.spans
        if spans is None:  # the provider is set up in the worker, after this was built
            spans = self.spans = ServerSpanFactory.for_current_provider(SCOPE_NAME)
            if spans is None:
                return self.tracer.start_span(
                    method, context=parent, kind=SpanKind.SERVER, attributes=attributes
                )
        return spans.start(method, parent, attributes)

    def enter_log_context(
        self, request_id: str, span: trace.Span | None, parent: Context
    ) -> tuple[Any, Any, object | None]:
        """The request id, no user yet, and the span as the current one (in the caller's
        context: its baggage stays); the tokens that undo it."""
        otel_token = None
        if span is not None:
            otel_token = attach_span(span, parent)
        return _set_request_id(request_id), _set_user_id(None), otel_token

    def end_span(
        self, span: trace.Span, route: str, method: str, tokens: tuple[Any, Any, Any] | None
    ) -> None:
        """The route template (route_of) and the span's name once routed; the context
        restored; ended."""
        if route:
            span.set_attribute("http.route", route)
            span.update_name(f"{method} {route}")
        if tokens is not None and tokens[2] is not None:
            detach(tokens[2])
        span.end()

    async def answer_unhandled(
        self,
        scope: Scope,
        send: Send,
        span: Any,
        exc: Exception,
        response_started: bool,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        """An exception from the app: recorded on the current span, logged with its
        traceback, and a JSON 500 when no response had started."""
        current = trace.get_current_span()
        current.record_exception(exc)
        current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        log.error(
            "unhandled_exception",
            exc_info=exc,
            method=scope["method"],
            path=scope["path"],
            error=f"{type(exc).__name__}: {exc}",
        )
        if response_started:
            return

        async def send_traced(message: Message) -> None:
            """The error answer's path: the span sees its status; the headers come with it."""
            if message["type"] == "http.response.start" and span is not None:
                set_response_status(span, int(message["status"]))
            await send(message)

        await send_error(send_traced, 500, "Internal Server Error", extra_headers)


def route_of(scope: Scope) -> str:
    """The matched route's template, never the raw path: "" when none matched (a 404)."""
    return getattr(scope.get("route"), "path", "")
