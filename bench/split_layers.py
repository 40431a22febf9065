"""The product's observability as the two layers it had before ObservabilityMiddleware
(TracingMiddleware outside AccessLogMiddleware): `make bench`'s full-split variant only, so
the one-layer change stays measurable. Not part of the service."""

from __future__ import annotations

import time

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


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
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
        if path.startswith(PROBE_PREFIX):  # probes are not traced
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
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
            if name in propagation_headers:
                if carrier is None:
                    carrier = {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
            elif name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
        # No propagation header: a new trace (what extracting from nothing gives).
        parent = propagate.extract(carrier) if carrier else Context()
        span = self.start_span(method, parent, attributes)
        # The current span: what log lines take their trace_id and span_id from.
        otel_token = otel_context.attach(trace.set_span_in_context(span, parent))

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:  # what the SDK's start_as_current_span records
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            route_path = getattr(scope.get("route"), "path", None)
            if route_path:
                span.set_attribute("http.route", route_path)
                span.update_name(f"{method} {route_path}")
            otel_context.detach(otel_token)
            span.end()


class AccessLogMiddleware:
    """Also the one place that observes a request's metrics: it already knows the method,
    the status (500 for a crash) and the duration, and the route template is in the scope
    once the router has run; a third wrapping middleware would cost a layer per request."""

    def __init__(
        self,
        app: ASGIApp,
        slow_request_ms: int,
        metrics: AppMetrics | None = None,
        app_version: str | None = None,
    ) -> None:
        self.app = app
        self.slow_request_ms = slow_request_ms
        self.metrics = metrics
        # Which build answered, on every response (the drill counts them per version).
        self.version_header = (
            (b"x-app-version", app_version.encode("ascii")) if app_version else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming_id = None
        user_agent = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming_id = value
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")[:MAX_UA_CHARS]
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
            active = metrics.active(scope["method"])
            active.inc()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            status = 500
            span = trace.get_current_span()
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            log.error(
                "unhandled_exception",
                exc_info=exc,
                method=scope["method"],
                path=scope["path"],
                error=f"{type(exc).__name__}: {exc}",
            )
            if not response_started:
                await send_error(send, 500, "Internal Server Error", extra_headers)
        finally:
            seconds = time.perf_counter() - started
            if metrics is not None and active is not None:
                active.dec()
                # The template, never the raw path: "" when no route matched (a 404).
                route = getattr(scope.get("route"), "path", "")
                metrics.observe_request(scope["method"], route, status, seconds)
            duration_ms = round(seconds * 1000, 2)
            self._log(scope, status, duration_ms, user_agent)
            context.request_id.reset(request_token)
            context.user_id.reset(user_token)

    def _log(self, scope: Scope, status: int, duration_ms: float, user_agent: str) -> None:
        log_request(scope, status, duration_ms, user_agent, self.slow_request_ms)
