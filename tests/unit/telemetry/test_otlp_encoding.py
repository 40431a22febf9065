"""The hand-written OTLP encoder gives exactly the upstream encoder's message, for spans
of every shape (the speed work must not change what is exported)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode

from service.telemetry import otlp_encoding
from service.telemetry.span import ServerSpan
from tests.unit.telemetry.spans import (
    ATTRIBUTES,
    REMOTE_PARENT,
    attribute_values,
    factory,
    parent_context,
    provider,
    same_message,
)


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


def test_plain_spans_take_the_one_function_path_and_give_the_same_bytes(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The usual ServerSpan (no events, links, trace state, drops or status description)
    is written by _plain_span: the bytes of the general path and the upstream message,
    for every kind, parent (none, local, remote) and status code."""
    tracer_provider, exporter = sdk
    server_spans = factory(tracer_provider, "service.http")
    local = trace.set_span_in_context(server_spans.start("GET", Context(), {}), Context())
    remote = SpanContext(
        REMOTE_PARENT.trace_id, REMOTE_PARENT.span_id, True, REMOTE_PARENT.trace_flags
    )  # no tracestate
    for kind in SpanKind:
        for parent in (Context(), local, parent_context(remote)):
            for code in StatusCode:
                span = server_spans.start("GET", parent, dict(ATTRIBUTES), kind)
                span.set_status(Status(code))
                span.end()
    spans = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    assert len(spans) == len(SpanKind) * 3 * len(StatusCode)  # the local parent never ends
    taken = []
    plain = otlp_encoding._plain_span

    def counting(span: ServerSpan) -> bytes:
        taken.append(span)
        return plain(span)

    otlp_encoding._plain_span = counting
    try:
        same_message(spans)
    finally:
        otlp_encoding._plain_span = plain
    assert len(taken) == len(spans)
    for finished in spans:
        assert isinstance(finished, ServerSpan)
        general = otlp_encoding._span_message(
            finished._context,
            finished._parent,
            finished._name,
            finished._kind,
            finished._start_time,
            finished._end_time,
            finished._attributes,
            finished._events,
            finished._links,
            finished._status,
            finished._dropped,
        )
        assert plain(finished) == general


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


@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_varints_are_what_protobuf_writes(value: int) -> None:
    """An int64 AnyValue is its tag (0x18) and the value as a varint."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    serialized = AnyValue(int_value=value).SerializeToString()
    assert otlp_encoding._varint(value) == serialized[1:]


def test_varints_at_each_length_boundary() -> None:
    cases = {0: b"\x00", 127: b"\x7f", 128: b"\x80\x01", 300: b"\xac\x02"}
    cases |= {16383: b"\xff\x7f", 16384: b"\x80\x80\x01", 2**21: b"\x80\x80\x80\x01"}
    for value, expected in cases.items():
        assert otlp_encoding._varint(value) == expected, value
