"""The lean exporter is safe to upgrade: it fails here when the pinned upstream exporter
changes what it relies on, and LEAN_OTLP_EXPORTER=false selects the stock one, which
delivers the same spans."""

from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import version

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from service.config import load_settings
from service.telemetry.otlp_exporter import (
    UPSTREAM_EXPORT_SHA256,
    UPSTREAM_VERSION,
    LeanOTLPSpanExporter,
    span_exporter,
)
from tools.testbed.otlp_receiver import OtlpReceiver

UPGRADE_HINT = (
    "opentelemetry-exporter-otlp-proto-http changed: compare OTLPSpanExporter.export with "
    "LeanOTLPSpanExporter.export (service/telemetry/otlp_exporter.py), follow the change, "
    "then update UPSTREAM_VERSION and UPSTREAM_EXPORT_SHA256 there; or run with "
    "LEAN_OTLP_EXPORTER=false meanwhile."
)


def test_the_installed_exporter_is_the_release_it_mirrors() -> None:
    assert version("opentelemetry-exporter-otlp-proto-http") == UPSTREAM_VERSION, UPGRADE_HINT
    source = inspect.getsource(OTLPSpanExporter.export)
    assert hashlib.sha256(source.encode()).hexdigest() == UPSTREAM_EXPORT_SHA256, UPGRADE_HINT


def test_the_private_members_it_uses_are_there() -> None:
    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    assert isinstance(exporter._shutdown, bool), UPGRADE_HINT
    assert isinstance(exporter._max_request_size, int | None), UPGRADE_HINT
    assert callable(exporter._metrics.export_operation), UPGRADE_HINT
    assert callable(exporter._client.export), UPGRADE_HINT
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_the_switch_selects_the_exporter() -> None:
    assert load_settings({}).lean_otlp_exporter is True
    assert load_settings({"LEAN_OTLP_EXPORTER": "false"}).lean_otlp_exporter is False
    assert type(span_exporter(lean=True)) is LeanOTLPSpanExporter
    assert type(span_exporter(lean=False)) is OTLPSpanExporter


def test_lean_and_stock_exporters_deliver_the_same_spans(otlp: OtlpReceiver) -> None:
    received = {}
    for lean in (True, False):
        exporter = (LeanOTLPSpanExporter if lean else OTLPSpanExporter)(
            endpoint=f"{otlp.endpoint}/v1/traces"
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "api"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("service.http").start_as_current_span(
            "GET /api/items/{item_id}", attributes={"http.route": "/api/items/{item_id}"}
        ) as span:
            span.set_attribute("http.response.status_code", 200)
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
        [delivered] = otlp.spans_for(trace_id)
        received[lean] = {k: v for k, v in delivered.items() if k not in ("trace_id", "span_id")}
        assert exporter.export([]) is SpanExportResult.FAILURE  # shut down with the provider
    assert received[True] == received[False]
    assert received[True]["name"] == "GET /api/items/{item_id}"
