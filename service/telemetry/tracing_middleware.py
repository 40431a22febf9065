"""TracingMiddleware: one OpenTelemetry server span per HTTP request (health excluded).

The span carries the stable HTTP semantic-convention attributes (http.request.method,
url.path, url.scheme, network.protocol.version, client.address, user_agent.original,
http.response.status_code, http.route) and joins the caller's trace through the global
propagator (W3C traceparent by default; OTEL_PROPAGATORS applies). With the SDK's
TracerProvider it is a ServerSpan (service/telemetry/tracing.py), the cheap path measured by
`make bench`; with any other provider it comes from the plain API.

The product runs these rules inside ObservabilityMiddleware (observability.py), one layer
with the access line, which uses start_span and propagation_headers from here."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request.context import PROBE_PREFIX
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
