"""ServerSpan behaves like the SDK's Span: parents, sampling, limits, status rules."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from service.telemetry.span_processors import does_nothing
from tests.unit.telemetry.spans import (
    ATTRIBUTES,
    REMOTE_PARENT,
    factory,
    parent_context,
    provider,
    same_message,
)


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


def test_ids_come_from_the_random_stream_as_the_sdk_generator_draws_them(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """With the SDK's RandomIdGenerator the factory calls random.getrandbits itself: the
    same trace and span ids as the generator gives from the same seed."""
    tracer_provider, _ = sdk
    server_spans = factory(tracer_provider, "service.http")
    assert server_spans.getrandbits is not None
    random.seed(7)
    span = server_spans.start("GET", Context(), {})
    random.seed(7)
    generator = RandomIdGenerator()
    expected = (generator.generate_trace_id(), generator.generate_span_id())
    context = span.get_span_context()
    assert (context.trace_id, context.span_id) == expected


def test_another_id_generator_is_asked(sdk: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    class Counting(RandomIdGenerator):
        def generate_span_id(self) -> int:
            return 5

        def generate_trace_id(self) -> int:
            return 9

    tracer_provider, _ = provider(id_generator=Counting())
    server_spans = factory(tracer_provider, "service.http")
    assert server_spans.getrandbits is None
    context = server_spans.start("GET", Context(), {}).get_span_context()
    assert (context.trace_id, context.span_id) == (9, 5)


def test_a_parent_read_by_the_caller_is_the_parent(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = sdk
    server_spans = factory(tracer_provider, "service.http")
    looked_up = server_spans.start("GET", parent_context(), {}, SpanKind.CLIENT)
    given = server_spans.start("GET", parent_context(), {}, SpanKind.CLIENT, REMOTE_PARENT)
    for span in (looked_up, given):
        span.end()
    first, second = exporter.get_finished_spans()
    assert first.parent == second.parent == REMOTE_PARENT
    first_context, second_context = first.get_span_context(), second.get_span_context()
    assert first_context is not None and second_context is not None
    assert first_context.trace_id == second_context.trace_id


def test_the_context_made_without_checks_is_the_one_span_context_makes(
    sdk: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    server_spans = factory(sdk[0], "service.http")
    for parent in (Context(), parent_context()):
        context = server_spans.start("GET", parent, {}).get_span_context()
        made = SpanContext(
            context.trace_id, context.span_id, False, context.trace_flags, context.trace_state
        )
        assert type(context) is SpanContext and context == made and context.is_valid
    assert context.trace_state == REMOTE_PARENT.trace_state  # the parent's, kept


def test_does_nothing_tells_an_empty_body() -> None:
    class Sample:
        def bare(self, span: object) -> None:
            pass

        def documented(self, span: object) -> None:
            """Only a docstring."""

        def returns_none(self, span: object) -> None:
            return None

        def works(self, span: list[int]) -> None:
            span.append(1)

        def generator(self, span: object) -> Iterator[None]:
            yield

        async def coroutine(self, span: object) -> None:
            pass

    assert does_nothing(Sample.bare) and does_nothing(Sample.documented)
    assert does_nothing(Sample.returns_none)
    assert not does_nothing(Sample.works) and not does_nothing(Sample.generator)
    assert not does_nothing(Sample.coroutine) and not does_nothing(print)
    assert does_nothing(BatchSpanProcessor.on_start) and does_nothing(SpanProcessor.on_end)


class Recorder(SpanProcessor):
    def __init__(self, name: str, calls: list[tuple[str, str, object]]) -> None:
        self.name, self.calls = name, calls

    def on_start(self, span: object, parent_context: object = None) -> None:
        self.calls.append((self.name, "on_start", span))

    def _on_ending(self, span: object) -> None:
        self.calls.append((self.name, "_on_ending", span))

    def on_end(self, span: object) -> None:
        self.calls.append((self.name, "on_end", span))


def test_processors_are_called_in_the_sdks_order() -> None:
    """Every processor's on_start at the start; at the end every _on_ending, then every
    on_end in the processors' order, a BatchSpanProcessor's queue in its place."""
    calls: list[tuple[str, str, object]] = []
    batch = BatchSpanProcessor(InMemorySpanExporter())
    batch._batch_processor.emit = lambda span: calls.append(("batch", "emit", span))  # type: ignore[method-assign,assignment]
    tracer_provider = TracerProvider()
    for processor in (Recorder("first", calls), batch, Recorder("last", calls)):
        tracer_provider.add_span_processor(processor)
    try:
        span = factory(tracer_provider).start("GET", Context(), {})
        span.end()
        assert [(name, call) for name, call, _ in calls] == [
            ("first", "on_start"),
            ("last", "on_start"),
            ("first", "_on_ending"),
            ("last", "_on_ending"),
            ("first", "on_end"),
            ("batch", "emit"),
            ("last", "on_end"),
        ]
        assert all(called is span for _, _, called in calls)
    finally:
        tracer_provider.shutdown()


class RecordOnly(Sampler):
    """Records every span, samples none: spans that processors see but never export."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


@pytest.mark.parametrize("sampler", [None, RecordOnly()], ids=["sampled", "record-only"])
def test_a_batch_span_processor_exports_the_sampled_spans(sampler: Sampler | None) -> None:
    exporter = InMemorySpanExporter()
    calls: list[tuple[str, str, object]] = []
    tracer_provider = TracerProvider() if sampler is None else TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer_provider.add_span_processor(Recorder("after", calls))
    try:
        span = factory(tracer_provider).start("GET", Context(), {})
        assert span.is_recording()
        span.end()
        assert tracer_provider.force_flush()
        assert exporter.get_finished_spans() == (() if sampler else (span,))
        assert ("after", "on_end", span) in calls  # every span reaches the others
    finally:
        tracer_provider.shutdown()


def test_another_multi_span_processor_is_called_as_the_sdk_calls_it() -> None:
    calls: list[tuple[str, str, object]] = []
    tracer_provider = TracerProvider(active_span_processor=ConcurrentMultiSpanProcessor(2))
    tracer_provider.add_span_processor(Recorder("only", calls))
    try:
        span = factory(tracer_provider).start("GET", Context(), {})
        span.end()
        assert [call for _, call, _ in calls] == ["on_start", "_on_ending", "on_end"]
    finally:
        tracer_provider.shutdown()


def test_events_links_and_drops_stay_with_their_span(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans share their empty events, links and drop counts until they have their own."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    tracer_provider, exporter = provider()
    server_spans = factory(tracer_provider)
    busy, quiet = (server_spans.start(name, Context(), {}) for name in ("busy", "quiet"))
    busy.set_attribute("a", 1)
    busy.set_attribute("b", 2)
    busy.add_event("first")
    busy.add_event("second")
    busy.add_link(REMOTE_PARENT)
    for span in (busy, quiet):
        span.end()
    busy_done, quiet_done = exporter.get_finished_spans()
    assert [event.name for event in busy_done.events] == ["second"]
    assert len(busy_done.links) == 1
    assert (busy_done.dropped_attributes, busy_done.dropped_events) == (1, 1)
    assert quiet_done.events == () and quiet_done.links == ()
    assert (quiet_done.dropped_attributes, quiet_done.dropped_events) == (0, 0)
    same_message([busy_done, quiet_done])
