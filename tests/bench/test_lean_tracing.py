"""The speed work must not change what is exported: the hand-written OTLP encoder gives
exactly the upstream encoder's message, and ServerSpan behaves like the SDK's Span."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
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
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.trace.status import Status, StatusCode

from service.tracing import ServerSpan, ServerSpanFactory, encode_spans

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


@pytest.fixture
def sdk() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    yield provider()


def factory(tracer_provider: TracerProvider, name: str = "t") -> ServerSpanFactory:
    tracer = tracer_provider.get_tracer(name)
    assert isinstance(tracer, SdkTracer)
    return ServerSpanFactory(tracer, name)


def parent_context(span_context: SpanContext = REMOTE_PARENT) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def same_message(spans: list[ReadableSpan]) -> None:
    assert ExportTraceServiceRequest.FromString(encode_spans(spans)) == upstream(spans)


def test_encoding_equals_upstream_for_sdk_spans_of_every_shape(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = sdk
    tracer = tracer_provider.get_tracer("service.http", "1.2", schema_url="https://schema/1")
    other = tracer_provider.get_tracer("other")
    with tracer.start_as_current_span(
        "GET",
        context=parent_context(),
        kind=SpanKind.SERVER,
        attributes={**ATTRIBUTES, "n": -3, "f": 0.5, "b": False, "list": [1, 2], "empty": ""},
        links=[Link(REMOTE_PARENT, {"why": "retry"})],
    ) as span:
        span.add_event("cache_miss", {"key": "item:7"})
        span.set_status(Status(StatusCode.ERROR, "boom"))
        try:
            raise ValueError("bad")
        except ValueError as exc:
            span.record_exception(exc)
        with other.start_as_current_span("child") as child:
            child.set_status(StatusCode.OK)
    with tracer.start_as_current_span("") as unnamed:
        unnamed.set_attribute("big", 2**63 - 1)
    same_message(list(exporter.get_finished_spans()))


def test_encoding_equals_upstream_for_server_spans(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = sdk
    server_spans = factory(tracer_provider, "service.http")
    for parent in (parent_context(), Context()):
        span = server_spans.start("GET", parent, dict(ATTRIBUTES))
        span.set_attribute("http.response.status_code", 500)
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("http.route", "/api/items/{item_id}")
        span.update_name("GET /api/items/{item_id}")
        span.end()
    spans = list(exporter.get_finished_spans())
    assert all(isinstance(s, ServerSpan) for s in spans)
    same_message(spans)
    same_message(spans * 3)  # the attribute cache gives the same bytes the next time


@settings(max_examples=150, deadline=None)
@given(attributes=st.dictionaries(st.text(max_size=10), attribute_values, max_size=6))
def test_encoding_equals_upstream_for_any_attributes(attributes: dict[str, Any]) -> None:
    tracer_provider, exporter = provider()
    with tracer_provider.get_tracer("t").start_as_current_span("s") as span:
        for key, value in attributes.items():
            span.set_attribute(key, value)
        span.add_event("e", attributes)
    server_spans = factory(tracer_provider)
    server_span = server_spans.start("GET", Context(), {})
    server_span.set_attributes(attributes)
    server_span.end()
    same_message(list(exporter.get_finished_spans()))


def test_bool_and_int_values_never_share_a_cache_entry(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = sdk
    tracer = tracer_provider.get_tracer("t")
    for value in (1, True, 1.0, 1, True):
        with tracer.start_as_current_span("s", attributes={"v": value}):
            pass
    same_message(list(exporter.get_finished_spans()))


def test_server_span_joins_the_remote_parent_and_keeps_its_tracestate(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = sdk
    server_spans = factory(tracer_provider, "service.http")
    span = server_spans.start("GET", parent_context(), dict(ATTRIBUTES))
    span.end()
    [finished] = exporter.get_finished_spans()
    context = finished.get_span_context()
    assert context is not None and finished.parent is not None
    assert context.trace_id == REMOTE_PARENT.trace_id
    assert finished.parent.span_id == REMOTE_PARENT.span_id and finished.parent.is_remote
    assert context.trace_state == REMOTE_PARENT.trace_state
    assert context.trace_flags.sampled and not context.is_remote
    assert finished.kind is SpanKind.SERVER
    assert finished.instrumentation_scope is not None
    assert finished.instrumentation_scope.name == "service.http"
    assert finished.resource.attributes["service.name"] == "api"
    assert dict(finished.attributes or {}) == ATTRIBUTES
    assert finished.start_time is not None and finished.end_time is not None
    assert finished.end_time >= finished.start_time


def test_server_span_follows_the_sampler(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    not_sampled = SpanContext(
        REMOTE_PARENT.trace_id, REMOTE_PARENT.span_id, is_remote=True, trace_flags=TraceFlags(0)
    )
    tracer_provider, exporter = sdk
    server_spans = factory(tracer_provider)
    dropped = server_spans.start("GET", parent_context(not_sampled), {})
    assert not dropped.is_recording()
    assert dropped.get_span_context().trace_id == REMOTE_PARENT.trace_id
    for sampler in (ALWAYS_OFF, TraceIdRatioBased(0.0)):
        tracer_provider, exporter = provider(sampler=sampler)
        span = factory(tracer_provider).start("GET", Context(), {})
        assert not span.is_recording() and span.get_span_context().is_valid
        span.end()
        assert exporter.get_finished_spans() == ()


def test_server_span_behaves_like_the_sdk_span(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracer_provider, exporter = sdk
    server_spans = factory(tracer_provider)
    lean = server_spans.start("GET", Context(), {})
    sdk_span = tracer_provider.get_tracer("t").start_span("GET", kind=SpanKind.SERVER)
    for span in (lean, sdk_span):
        span.set_attribute("ok", "yes")
        span.set_attribute("bad", object())  # type: ignore[arg-type]  # dropped, logged
        span.set_attribute("tuple", ("a", "b"))
        span.set_status(Status(StatusCode.ERROR, "first"))
        span.set_status(StatusCode.OK)
        span.set_status(Status(StatusCode.ERROR, "after ok"))  # OK is final
        span.add_event("event", {"k": 1})
        span.add_link(REMOTE_PARENT, {"l": True})
        try:
            raise KeyError("missing")
        except KeyError as exc:
            span.record_exception(exc, {"extra": 1})
        span.end()
        with caplog.at_level(logging.WARNING):
            span.set_attribute("late", 1)  # ignored after end
            span.end()  # a second end changes nothing
    lean_finished, sdk_finished = exporter.get_finished_spans()
    assert dict(lean_finished.attributes or {}) == dict(sdk_finished.attributes or {})
    assert lean_finished.status.status_code is sdk_finished.status.status_code is StatusCode.OK
    assert [e.name for e in lean_finished.events] == [e.name for e in sdk_finished.events]
    for ours, theirs in zip(lean_finished.events, sdk_finished.events, strict=True):
        assert set(ours.attributes or {}) == set(theirs.attributes or {})
    assert lean_finished.events[1].attributes is not None
    assert lean_finished.events[1].attributes["exception.type"] == "KeyError"
    assert [dict(link.attributes or {}) for link in lean_finished.links] == [{"l": True}]
    assert "late" not in (lean_finished.attributes or {})


def test_server_span_respects_attribute_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    tracer_provider, exporter = provider()
    span = factory(tracer_provider).start("GET", Context(), {})
    for index in range(5):
        span.set_attribute(f"k{index}", "long value")
    span.end()
    [finished] = exporter.get_finished_spans()
    assert dict(finished.attributes or {}) == {"k2": "long", "k3": "long", "k4": "long"}
    assert finished.dropped_attributes == 2
    same_message([finished])
