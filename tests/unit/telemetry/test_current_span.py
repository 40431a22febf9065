"""current_span.py gives what the OpenTelemetry API gives: the current span's context,
the span made current in a parent's context, and SpanContext's fields."""

from __future__ import annotations

import importlib
import logging
from contextvars import copy_context

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import TraceState

from service.telemetry import current_span
from service.telemetry.current_span import (
    IS_REMOTE,
    IS_VALID,
    SPAN_ID,
    TRACE_FLAGS,
    TRACE_ID,
    TRACE_STATE,
    attach_span,
    current_span_context,
    detach,
)
from tests.unit.telemetry.spans import REMOTE_PARENT, factory


def test_span_context_fields_by_index() -> None:
    context = SpanContext(7, 9, True, TraceFlags(3), TraceState([("k", "v")]))
    assert context[TRACE_ID] == context.trace_id == 7
    assert context[SPAN_ID] == context.span_id == 9
    assert context[IS_REMOTE] is context.is_remote is True
    assert context[TRACE_FLAGS] == context.trace_flags == 3
    assert context[TRACE_STATE] is context.trace_state
    assert context[IS_VALID] is context.is_valid is True
    assert SpanContext(0, 9, False)[IS_VALID] is False


def contexts(sdk_provider: TracerProvider) -> list[Context]:
    server_span = factory(sdk_provider).start("GET", Context(), {})
    sdk_span = sdk_provider.get_tracer("t").start_span("sdk")
    return [
        Context(),
        trace.set_span_in_context(server_span, Context()),
        trace.set_span_in_context(sdk_span, Context()),
        trace.set_span_in_context(NonRecordingSpan(REMOTE_PARENT), Context()),
        trace.set_span_in_context(trace.INVALID_SPAN, Context()),
        Context({_SPAN_KEY: "not a span"}),
        baggage.set_baggage("k", "v", Context()),
    ]


def test_the_current_span_context_is_the_apis(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    for context in contexts(sdk[0]):
        expected = trace.get_current_span(context).get_span_context()
        assert current_span_context(context) == expected  # given
        token = otel_context.attach(context)
        try:
            assert current_span_context() == expected  # the current one
        finally:
            otel_context.detach(token)


def test_attach_span_is_attach_of_set_span_in_context(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    span = factory(sdk[0]).start("GET", Context(), {})
    parent = baggage.set_baggage("tenant", "a", Context())
    before = otel_context.get_current()
    token = attach_span(span, parent)
    try:
        now = otel_context.get_current()
        assert now == trace.set_span_in_context(span, parent) and type(now) is Context
        assert trace.get_current_span() is span
        assert baggage.get_baggage("tenant") == "a"  # the parent's context stays
    finally:
        detach(token)
    assert otel_context.get_current() is before


def test_a_token_from_another_context_is_logged_as_the_api_does(
    sdk: tuple[TracerProvider, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    span = factory(sdk[0]).start("GET", Context(), {})
    token = copy_context().run(attach_span, span, Context())
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        detach(token)  # does not raise
    assert "Failed to detach context" in caplog.text


def test_another_runtime_context_takes_the_apis_calls(
    sdk: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    class OtherRuntime(ContextVarsRuntimeContext):  # as OTEL_PYTHON_CONTEXT could name
        pass

    span = factory(sdk[0]).start("GET", Context(), {})
    readers = dict(current_span._readers)  # what span.py registered at import
    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", OtherRuntime())
    try:
        module = importlib.reload(current_span)
        assert module.current_context is otel_context.get_current
        token = module.attach_span(span, Context())
        assert trace.get_current_span() is span
        assert module.current_span_context() == span.get_span_context()
        module.detach(token)
        assert trace.get_current_span() is trace.INVALID_SPAN
    finally:
        monkeypatch.undo()
        importlib.reload(current_span)
        current_span._readers.update(readers)
