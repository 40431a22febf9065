# Usage: OBSERVABILITY=off gunicorn -c python:service.gunicorn_conf bench.stock_app:app
"""The "stock" benchmark variant: our app with OBSERVABILITY=off (no tracing middleware,
no access log) instrumented with the contrib `opentelemetry-instrumentation-fastapi`,
the way most users add tracing to a FastAPI app.

Only the benchmark imports this module, so the product never depends on the contrib
package. FastAPI's native telemetry stays off (create_app does that): one tracing path.
The TracerProvider is the product's own (BatchSpanProcessor + OTLP/HTTP exporter when
OTEL_EXPORTER_OTLP_ENDPOINT is set), created here because Gunicorn imports the app in
each worker after the fork."""

from __future__ import annotations

import os
from typing import Literal

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from service.config import get_settings
from service.main import create_app
from service.telemetry.tracing import setup_tracing

# Probes are not traced in the product either.
EXCLUDED_URLS = "/health/.*"
# The instrumentation's leanest option: "receive,send" drops the internal span it
# otherwise creates for every ASGI message (the "stock-lean" variant).
SPAN_KINDS: dict[str, Literal["receive", "send"]] = {"receive": "receive", "send": "send"}
EXCLUDE_SPANS = [
    SPAN_KINDS[name.strip()]
    for name in os.environ.get("BENCH_STOCK_EXCLUDE_SPANS", "").split(",")
    if name.strip() in SPAN_KINDS
]

settings = get_settings().model_copy(update={"observability": "off"})
setup_tracing(settings.service_name, settings.lean_otlp_exporter)
app = create_app(settings)
FastAPIInstrumentor.instrument_app(
    app,
    excluded_urls=EXCLUDED_URLS,
    exclude_spans=EXCLUDE_SPANS or None,
)
