"""ObservabilityMiddleware: the server span and the access line in one pure-ASGI layer.

It was two layers (a tracing and an access-log middleware), each wrapping `send`,
scanning the request headers and adding a coroutine call per ASGI message; `make bench`
keeps that pair as its full-split variant (bench/split_layers.py). In order:
- the server span: health probes not traced; the caller's trace joined through the
  configured propagators (W3C traceparent by default; OTEL_PROPAGATORS applies); the
  stable HTTP semantic-convention attributes, http.response.status_code, and http.route
  and the span's name once routed. With the SDK's TracerProvider it is a ServerSpan
  (span.py, the cheap path measured by `make bench`), else the plain API's span;
- within it: the request id (kept or generated), the metrics, X-Request-ID and
  X-App-Version on the response, the access line (access_log.py), and the JSON 500 for an
  unhandled exception."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request import context
from service.request.context import PROBE_PREFIX
from service.request.errors import send_error
from service.request.request_id import accept_or_generate
from service.telemetry.access_log import MAX_UA_CHARS, log, log_request
from service.telemetry.metrics import AppMetrics
from service.telemetry.span import ServerSpanFactory

SCOPE_NAME = "service.http"
_ERROR = Status(StatusCode.ERROR)


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        slow_request_ms: int,
        metrics: AppMetrics | None = None,
        app_version: str | None = None,
    ) -> None:
        self.app = app
        self.slow_request_ms = slow_request_ms
        # The request's metrics are observed here: this layer already knows the method,
        # the status (500 for a crash), the duration and, once routed, the route template.
        self.metrics = metrics
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

    def start_span(self, name: str, parent: Context, attributes: dict[str, str]) -> trace.Span:
        spans = self.spans
        if spans is None:  # the provider is set up in the worker, after this was built
            spans = self.spans = ServerSpanFactory.for_current_provider(SCOPE_NAME)
            if spans is None:
                return self.tracer.start_span(
                    name, context=parent, kind=SpanKind.SERVER, attributes=attributes
                )
        return spans.start(name, parent, attributes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        traced = not path.startswith(PROBE_PREFIX)  # probes are not traced
        incoming_id = None
        user_agent = ""
        span: Any = None
        otel_token = None
        if traced:
            attributes = {
                "http.request.method": method,
                "url.path": path,
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
            }
            client = scope.get("client")
            if client:
                attributes["client.address"] = client[0]
            carrier: dict[str, str] | None = None
            propagation_headers = self.propagation_headers
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    incoming_id = value
                elif name == b"user-agent":
                    full_agent = value.decode("latin-1")
                    attributes["user_agent.original"] = full_agent
                    user_agent = full_agent[:MAX_UA_CHARS]
                elif name in propagation_headers:
                    if carrier is None:
                        carrier = {}
                    carrier[name.decode("latin-1")] = value.decode("latin-1")
            # No propagation header: a new trace (what extracting from nothing gives).
            parent = propagate.extract(carrier) if carrier else Context()
            span = self.start_span(method, parent, attributes)
            # The current span: what log lines take their trace_id and span_id from.
            otel_token = otel_context.attach(trace.set_span_in_context(span, parent))
        else:
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    incoming_id = value
                elif name == b"user-agent":
                    user_agent = value.decode("latin-1")[:MAX_UA_CHARS]
        started = time.perf_counter()
        request_id = accept_or_generate(incoming_id)
        request_token = context.request_id.set(request_id)
        user_token = context.user_id.set(None)
        header = (b"x-request-id", request_id.encode())
        extra_headers = [header] if self.version_header is None else [header, self.version_header]
        status = 500
        response_started = False
        metrics = self.metrics
        active = None
        if metrics is not None:
            active = metrics.active(method)
            active.inc()

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
                if span is not None:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(_ERROR)
            await send(message)

        try:
            # The access-log part, inside the span.
            try:
                await self.app(scope, receive, send_observed)
            except Exception as exc:
                status = 500
                await self._unhandled(scope, send, span, exc, response_started, extra_headers)
            finally:
                seconds = time.perf_counter() - started
                if metrics is not None and active is not None:
                    active.dec()
                    # The template, never the raw path: "" when no route matched (a 404).
                    route = getattr(scope.get("route"), "path", "")
                    metrics.observe_request(method, route, status, seconds)
                log_request(
                    scope, status, round(seconds * 1000, 2), user_agent, self.slow_request_ms
                )
                context.request_id.reset(request_token)
                context.user_id.reset(user_token)
        except Exception as exc:  # what the SDK's start_as_current_span records
            if span is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            if span is not None:
                route_path = getattr(scope.get("route"), "path", None)
                if route_path:
                    span.set_attribute("http.route", route_path)
                    span.update_name(f"{method} {route_path}")
                otel_context.detach(otel_token)  # type: ignore[arg-type]
                span.end()

    async def _unhandled(
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
                span.set_attribute("http.response.status_code", int(message["status"]))
                if int(message["status"]) >= 500:
                    span.set_status(_ERROR)
            await send(message)

        await send_error(send_traced, 500, "Internal Server Error", extra_headers)
