"""ObservabilityMiddleware: TracingMiddleware and AccessLogMiddleware in one pure-ASGI layer.

The two layers each wrapped `send`, scanned the request headers and added a coroutine
call per ASGI message; `make bench` measured the pair against one layer (the full-split
variant, bench/README.md). This layer does what the two did, in the same order, with
one header scan and one `send` wrapper: the server span (TracingMiddleware's rules:
health probes not traced, the caller's trace joined through the configured propagators,
the stable HTTP attributes, http.route and the span's name once routed), then within it
the request id, the metrics, X-Request-ID and X-App-Version, the access line and the
JSON 500 for an unhandled exception (AccessLogMiddleware's rules)."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request import context
from service.request.context import PROBE_PREFIX
from service.request.errors import send_error
from service.request.request_id import accept_or_generate
from service.telemetry.access_log import MAX_UA_CHARS, AccessLogMiddleware, log
from service.telemetry.metrics import AppMetrics
from service.telemetry.tracing_middleware import TracingMiddleware

_ERROR = Status(StatusCode.ERROR)


class ObservabilityMiddleware(AccessLogMiddleware):
    """What Tracing(AccessLog(app)) did, as one layer."""

    def __init__(
        self,
        app: ASGIApp,
        slow_request_ms: int,
        metrics: AppMetrics | None = None,
        app_version: str | None = None,
    ) -> None:
        super().__init__(app, slow_request_ms, metrics, app_version)
        # The span's start (ServerSpanFactory once the worker's provider exists, else the
        # plain API) and the propagation headers, as TracingMiddleware has them.
        self.tracing = TracingMiddleware(app)
        self.propagation_headers = self.tracing.propagation_headers

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
            span = self.tracing.start_span(method, parent, attributes)
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
            # AccessLogMiddleware's part, inside the span.
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
                self._log(scope, status, round(seconds * 1000, 2), user_agent)
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
        traceback, and a JSON 500 when no response had started (AccessLogMiddleware's)."""
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
