"""The lean exporter is safe to upgrade: it fails here when the pinned upstream exporter
changes what it relies on, and LEAN_OTLP_EXPORTER=false selects the stock one, which
delivers the same spans."""

from __future__ import annotations

import hashlib
import inspect
import os
from importlib.metadata import version
from pathlib import Path

import pytest
from opentelemetry.exporter.http.transport._base import BaseHTTPTransport
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from service.config import load_settings
from service.telemetry.otlp_exporter import (
    UPSTREAM_EXPORT_SHA256,
    UPSTREAM_VERSION,
    LeanOTLPSpanExporter,
    post_transport,
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
    # span_exporter: the resolved endpoint, and the transport given at construction.
    assert exporter._endpoint == "http://127.0.0.1:9/v1/traces", UPGRADE_HINT
    assert "_transport" in inspect.signature(OTLPSpanExporter).parameters, UPGRADE_HINT
    assert isinstance(exporter._client._transport, BaseHTTPTransport), UPGRADE_HINT
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_the_switch_selects_the_exporter() -> None:
    assert load_settings({}).lean_otlp_exporter is True
    assert load_settings({"LEAN_OTLP_EXPORTER": "false"}).lean_otlp_exporter is False
    assert type(span_exporter(lean=True)) is LeanOTLPSpanExporter
    assert type(span_exporter(lean=False)) is OTLPSpanExporter


def transport_of(exporter: object) -> BaseHTTPTransport:
    return exporter._client._transport  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def plain_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No proxy variable, no credential provider, an empty netrc, no traces-only endpoint
    (the tests set OTEL_EXPORTER_OTLP_ENDPOINT): what a pod usually has."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or "CREDENTIAL_PROVIDER" in name:
            monkeypatch.delenv(name)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return monkeypatch


@pytest.mark.parametrize(
    "endpoint", ["http://collector:4318", "http://10.0.0.7:4318", "HTTP://Collector:4318"]
)
def test_a_plain_http_endpoint_posts_through_urllib3(
    plain_environment: pytest.MonkeyPatch, endpoint: str
) -> None:
    plain_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    exporter = span_exporter(lean=True)
    assert type(exporter) is LeanOTLPSpanExporter
    assert type(transport_of(exporter)) is Urllib3HTTPTransport
    assert post_transport("http://collector:4318/v1/traces") is not None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector:4318/v1/traces"),
        ("HTTP_PROXY", "http://proxy:3128"),
        ("http_proxy", "http://proxy:3128"),
        ("ALL_PROXY", "http://proxy:3128"),
        ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", "gcp"),
        ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", "gcp"),
    ],
)
def test_requests_stays_where_it_does_more(
    plain_environment: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """https (certifi's CA bundle, REQUESTS_CA_BUNDLE), a proxy, a credential provider."""
    plain_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    plain_environment.setenv(variable, value)
    if "CREDENTIAL_PROVIDER" in variable:  # the exporter would load the entry point
        assert post_transport("http://collector:4318/v1/traces") is None
        return
    assert type(transport_of(span_exporter(lean=True))) is RequestsHTTPTransport


def test_a_netrc_entry_for_the_collector_keeps_requests(
    plain_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """requests sends a netrc entry's login as Basic auth; urllib3 would not."""
    (tmp_path / "netrc").write_text("machine collector login api password secret\n")
    (tmp_path / "netrc").chmod(0o600)
    assert post_transport("http://collector:4318/v1/traces") is None
    assert post_transport("http://other:4318/v1/traces") is not None


def test_the_urllib3_transport_delivers_batch_after_batch(
    plain_environment: pytest.MonkeyPatch, otlp: OtlpReceiver
) -> None:
    """Through the real receiver, which answers HTTP/1.0 and closes every connection:
    each export opens a new one and delivers."""
    plain_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
    exporter = span_exporter(lean=True)
    assert type(transport_of(exporter)) is Urllib3HTTPTransport
    provider = TracerProvider(resource=Resource.create({"service.name": "api"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_ids = []
    for number in range(3):
        with provider.get_tracer("service.http").start_as_current_span(f"GET /{number}") as span:
            trace_ids.append(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()
    assert [[s["name"] for s in otlp.spans_for(t)] for t in trace_ids] == [
        ["GET /0"],
        ["GET /1"],
        ["GET /2"],
    ]


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
