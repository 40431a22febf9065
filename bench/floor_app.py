# Usage: OBSERVABILITY=full gunicorn -c python:service.gunicorn_conf bench.floor_app:app
"""The "floor" benchmark variant: full's span, processor, exporter and metrics with the
least layer around them (issue 18: full >= 0.95 x floor). It measures our middleware,
not the least the work can cost: that is bench/least_app.py's "least" variant.

The same app as the product's (create_app with the same settings: routes, shutdown and
body-limit middleware, metrics, the TracerProvider with its BatchSpanProcessor and OTLP
exporter, the SQL statement hooks) with the observability middleware replaced by one
pure-ASGI layer, FloorLayer, that does only what every request must get:
- the request id: kept when valid, else generated; echoed in X-Request-ID (and
  X-App-Version), and set for the request's log lines;
- one server span with the same attributes (method, path, scheme, protocol version,
  client address, user agent, status code, route), child of an incoming traceparent,
  current while the app runs (so dependency spans and log lines join it), sampled and
  exported through the provider's processor;
- the same metrics updates (active requests up and down, one duration observation);
- one JSON access line with the same fields, one write(2).
Nothing else: no configuration, no slow-request line, no exception handling (an error
escapes to uvicorn), no fallback to the logging path, no drain logic.

Where full traces dependencies (OTEL_INSTRUMENT_DEPENDENCIES, on by default), the floor
does too, so both export the same spans: the product's SQL statement hooks, and a Redis
command span made the cheapest way (the lean span of service/telemetry/span.py). The
measured items route is a cache hit: one Redis GET span per request.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import get_settings
from service.main import create_app
from service.request import context
from service.request.request_id import accept_or_generate
from service.telemetry import json_line
from service.telemetry.metrics import AppMetrics
from service.telemetry.span import ServerSpanFactory

# The product's observability middleware, which the floor replaces.
REPLACED = frozenset({"TracingMiddleware", "AccessLogMiddleware", "ObservabilityMiddleware"})
_encode = json_line.encode  # the fastest JSON encoder the product has: the C one, made once
_timestamp = json_line.rfc3339  # RFC 3339 with milliseconds, the second formatted once


class FloorLayer:
    def __init__(self, app: ASGIApp, service: str, metrics: AppMetrics, version: str) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.version_header = (b"x-app-version", version.encode("ascii"))
        self.fields = frozenset(
            field.lower().encode("latin-1") for field in propagate.get_global_textmap().fields
        )
        self.spans: ServerSpanFactory | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if self.spans is None:  # the provider is set up in the worker's lifespan
            self.spans = ServerSpanFactory.for_current_provider("service.http")
            assert self.spans is not None
        method: str = scope["method"]
        path: str = scope["path"]
        client = scope.get("client")
        client_ip = client[0] if client else None
        incoming_id = None
        user_agent = ""
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if client_ip is not None:
            attributes["client.address"] = client_ip
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming_id = value
            elif name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
                user_agent = attributes["user_agent.original"][:512]
            elif name in self.fields:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        request_id = accept_or_generate(incoming_id)
        parent = propagate.extract(carrier) if carrier else Context()
        span = self.spans.start(method, parent, attributes)
        otel_token = otel_context.attach(trace.set_span_in_context(span, parent))
        id_token = context.request_id.set(request_id)
        active = self.metrics.active(method)
        active.inc()
        extra_headers = [(b"x-request-id", request_id.encode()), self.version_header]
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            active.dec()
            route = getattr(scope.get("route"), "path", "")
            self.metrics.observe_request(method, route, status, seconds)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
            if route:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span_context = span.get_span_context()
            line = _encode(
                {
                    "timestamp": _timestamp(time.time()),
                    "level": "error" if status >= 500 else "info",
                    "message": "request_completed",
                    "service": self.service,
                    "request_id": request_id,
                    "trace_id": format(span_context.trace_id, "032x"),
                    "span_id": format(span_context.span_id, "016x"),
                    "method": method,
                    "path": path,
                    "status_code": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client_ip": client_ip,
                    "user_agent": user_agent,
                }
            )
            os.write(1, (line + "\n").encode())
            context.request_id.reset(id_token)
            otel_context.detach(otel_token)
            span.end()


def redis_spans(server: dict[str, Any]) -> Any:
    """The Redis command span, the cheapest way: a lean CLIENT span under the current one."""
    spans: ServerSpanFactory | None = None

    @contextmanager
    def span_for(command: str) -> Iterator[trace.Span]:
        nonlocal spans
        if spans is None:
            spans = ServerSpanFactory.for_current_provider("service.dependencies")
            assert spans is not None
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).get_span_context().is_valid:
            yield trace.INVALID_SPAN  # outside a request (readiness probes): no span
            return
        attributes = {"db.system.name": "redis", "db.operation.name": command, **server}
        span = spans.start(command, parent, attributes, SpanKind.CLIENT)
        try:
            yield span
        finally:
            span.end()

    return span_for


def floor_app() -> FastAPI:
    settings = get_settings()
    if settings.observability != "full" or not settings.metrics_on:
        raise RuntimeError("the floor runs with OBSERVABILITY=full and the metrics on")
    app = create_app(settings)
    assert app.state.metrics is not None
    kept = [m for m in app.user_middleware if getattr(m.cls, "__name__", "") not in REPLACED]
    layer = Middleware(
        FloorLayer,
        service=settings.service_name,
        metrics=app.state.metrics,
        version=settings.app_version,
    )
    app.user_middleware = [layer, *kept]  # the outermost, where full's layer was
    product_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with product_lifespan(app_) as state:
            cache = app.state.resources.cache
            if cache is not None and cache.trace_commands:
                cache._span = redis_spans(cache.server)
            yield state

    app.router.lifespan_context = lifespan
    return app


app = floor_app()
