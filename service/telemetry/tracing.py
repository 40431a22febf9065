"""OpenTelemetry set-up: one TracerProvider per worker process, created after fork.

Server spans come from our ObservabilityMiddleware (FastAPI's native telemetry is switched
off in main.py so a request is never traced twice). The standard OTEL_* variables
apply: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG),
OTEL_PROPAGATORS, OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS/TIMEOUT, OTEL_SDK_DISABLED,
OTEL_SPAN_*_LIMIT, OTEL_BSP_*.

Two parts of the SDK's path cost more than the whole bare request on a trivial route
(measured by `make bench`, see bench/README.md); the SDK stays in charge and these
replace them: ServerSpan (span.py) for the request's span, and LeanOTLPSpanExporter
(otlp_exporter.py, encoding in otlp_encoding.py) for the export thread's encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from service.telemetry.logs import get_logger
from service.telemetry.otlp_exporter import span_exporter

log = get_logger(__name__)
_provider: TracerProvider | None = None


def otlp_endpoint_configured() -> bool:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def setup_tracing(
    service_name: str, lean_exporter: bool = True, service_version: str | None = None
) -> TracerProvider:
    """Create and register this process's TracerProvider (idempotent per process).

    Without an OTLP endpoint spans are still created, so every log line inside a
    request carries a real trace_id/span_id; they are just not exported. lean_exporter
    False (LEAN_OTLP_EXPORTER=false) exports through the stock OTLPSpanExporter."""
    global _provider
    if _provider is not None:
        return _provider
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    # APP_VERSION, unless OTEL_RESOURCE_ATTRIBUTES names service.version itself.
    if service_version and "service.version=" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.version"] = service_version
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    exporting = otlp_endpoint_configured()
    if exporting:
        provider.add_span_processor(BatchSpanProcessor(span_exporter(lean_exporter)))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info(
        "tracing_configured",
        otlp_export=exporting,
        exporter=("lean" if lean_exporter else "stock") if exporting else None,
        pid=os.getpid(),
    )
    return provider


async def flush_tracing(timeout_s: float) -> bool | None:
    """Export what is buffered, waiting at most timeout_s; called last during shutdown.
    None: no TracerProvider; False: cut at timeout_s (or the export failed).

    The SDK's force_flush ignores its timeout: it exports in the caller's thread, bounded
    only by the exporter's own timeout and retries (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by
    default), so a collector that accepts and never answers held the worker that long. It
    runs in a daemon thread here, which the process's exit does not wait for."""
    provider = _provider
    if provider is None:
        return None
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def settle(ok: bool) -> None:
        if not done.done():  # cancelled when the wait below was cut
            done.set_result(ok)

    def run() -> None:
        try:
            ok = provider.force_flush()
        except Exception:
            ok = False
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, ok)

    threading.Thread(target=run, name="span-flush", daemon=True).start()
    try:
        return await asyncio.wait_for(done, max(0.0, timeout_s))
    except TimeoutError:
        return False
