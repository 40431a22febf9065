# Usage: gunicorn -c python:service.gunicorn_conf "bench.ab_apps:build('split', 'sdk')"
"""Full observability with one of its speed changes undone, for A/B variants in the same
`make bench` run (bench/README.md says what each bought):
  layers "split"           the two middlewares full had before ObservabilityMiddleware
                           (TracingMiddleware outside AccessLogMiddleware, same settings)
  dependency_spans "sdk"   our dependency spans made by the SDK's Span (tracer.start_span),
                           as before they took the lean span of service/telemetry/span.py
build("split", "sdk") is full as it was before both (the "full-before" variant)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, SpanKind
from starlette.middleware import Middleware

from bench.split_layers import AccessLogMiddleware, TracingMiddleware
from service.main import create_app
from service.telemetry import dependency_spans
from service.telemetry.observability import ObservabilityMiddleware


def sdk_client_span(
    name: str,
    attributes: dict[str, Any],
    current: Context | None = None,
    parent: SpanContext | None = None,  # the span in `current`: the SDK reads it there
) -> trace.Span:
    return dependency_spans._tracer.start_span(
        name, context=current, kind=SpanKind.CLIENT, attributes=attributes
    )


def build(layers: str = "one", spans: str = "lean") -> FastAPI:
    if layers not in ("one", "split") or spans not in ("lean", "sdk"):
        raise ValueError(f"unknown A/B choice {layers!r}, {spans!r}")
    if spans == "sdk":
        dependency_spans.start_client_span = sdk_client_span
    app = create_app()
    if layers == "split":
        [layer] = [m for m in app.user_middleware if m.cls is ObservabilityMiddleware]  # type: ignore[comparison-overlap]
        index = app.user_middleware.index(layer)
        # the old layers had no jobs: they did all of them
        without_jobs = {key: value for key, value in layer.kwargs.items() if key != "jobs"}
        app.user_middleware[index : index + 1] = [
            Middleware(TracingMiddleware),
            Middleware(AccessLogMiddleware, *layer.args, **without_jobs),  # type: ignore[arg-type]
        ]
    return app
