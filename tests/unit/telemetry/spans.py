"""Spans for the telemetry unit tests: an SDK provider exporting to memory, a
ServerSpanFactory over it, a remote parent and typical server attributes."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as upstream
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState

from service.telemetry.otlp_encoding import encode_spans
from service.telemetry.span import ServerSpanFactory

REMOTE_PARENT = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
)
ATTRIBUTES = {
    "http.request.method": "GET",
    "url.path": "/api/items/7",
    "url.scheme": "http",
    "network.protocol.version": "1.1",
    "client.address": "127.0.0.1",
    "user_agent.original": "test/1 ü",
}
attribute_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.lists(st.text(max_size=3), max_size=3),
)


def provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(
        resource=Resource.create({"service.name": "api", "service.version": "1"}), **kwargs
    )
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, exporter


def factory(tracer_provider: TracerProvider, name: str = "t") -> ServerSpanFactory:
    tracer = tracer_provider.get_tracer(name)
    assert isinstance(tracer, SdkTracer)
    return ServerSpanFactory(tracer, name)


def parent_context(span_context: SpanContext = REMOTE_PARENT) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def same_message(spans: list[ReadableSpan]) -> None:
    assert ExportTraceServiceRequest.FromString(encode_spans(spans)) == upstream(spans)
