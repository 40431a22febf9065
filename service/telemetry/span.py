"""ServerSpan: the request's span, with the SDK Span's behaviour at a fraction of its cost.

The SDK Span locks, validates and copies every attribute through BoundedAttributes and
copies itself into a ReadableSpan when it ends (measured by `make bench`: more than the
whole bare request on a trivial route). A ServerSpan takes the middleware's known-good
attributes as they are (anything set later is cleaned the SDK's way) and is itself the
ReadableSpan the processors get. The SDK's TracerProvider, sampler, id generator and span
processors stay in charge (ServerSpanFactory reads them from an SDK tracer; which of the
processors' calls a span makes: span_processors.py)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from operator import attrgetter
from random import getrandbits
from time import time_ns
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from service.telemetry.current_span import (
    IS_VALID,
    TRACE_FLAGS,
    TRACE_ID,
    TRACE_STATE,
    current_span_context,
    read_span_context_with,
)
from service.telemetry.span_processors import ProcessorPlan, processor_plan

# The SDK's own warnings (ended span, ignored description), under this module's name.
_sdk_log = logging.getLogger(__name__)
_UNSET = Status(StatusCode.UNSET)
# A span's TraceFlags by value: sampled (0x01) | random trace id (0x02).
_FLAGS = tuple(TraceFlags(value) for value in range(4))
_SAMPLED = TraceFlags.SAMPLED
_RANDOM_ID = TraceFlags.RANDOM_TRACE_ID
_new_tuple = tuple.__new__


class ServerSpanFactory:
    """Starts ServerSpans with an SDK tracer's own sampler, id generator, resource and
    span processors (so OTEL_TRACES_SAMPLER and the exporter apply as usual)."""

    def __init__(self, tracer: SdkTracer, scope_name: str) -> None:
        self.sampler = tracer.sampler
        self.id_generator = tracer.id_generator
        self.random_trace_ids = _RANDOM_ID if tracer.id_generator.is_trace_id_random() else 0
        # The SDK's default generator is random.getrandbits, redrawn when 0: called
        # here directly (the same stream; tests/unit/telemetry/test_span.py).
        self.getrandbits = getrandbits if type(tracer.id_generator) is RandomIdGenerator else None
        self.resource = tracer.resource
        self.span_processor = tracer.span_processor
        self.plan = processor_plan(self.span_processor)
        self.scope = InstrumentationScope(scope_name)
        self.limits = SpanLimits()
        limit = self.limits.max_span_attributes
        self.max_attributes = limit if limit is not None else 1 << 31
        self.max_value_length = self.limits.max_span_attribute_length

    def replan(self) -> ProcessorPlan:
        """A new plan: a processor was added since (start and end compare the tuple)."""
        self.plan = processor_plan(self.span_processor)
        return self.plan

    @classmethod
    def for_current_provider(cls, scope_name: str) -> ServerSpanFactory | None:
        """A factory over the global TracerProvider, or None when that is not the SDK's
        (not set up yet, OTEL_SDK_DISABLED, another SDK): then use the plain API."""
        tracer = trace.get_tracer_provider().get_tracer(scope_name)
        return cls(tracer, scope_name) if isinstance(tracer, SdkTracer) else None

    def start(
        self,
        name: str,
        parent: Context,
        attributes: dict[str, Any],
        kind: SpanKind = SpanKind.SERVER,
        parent_span_context: SpanContext | None = None,
    ) -> trace.Span:
        """A span of `kind` (SERVER unless told), child of the span in `parent` (an
        extracted or the current context) if any; `parent_span_context`: that span's
        context when the caller has already read it. `attributes` must hold valid
        attribute values; the span keeps the dict."""
        if parent_span_context is None and parent:  # an empty context holds no parent
            parent_span_context = current_span_context(parent)
        random_bits = self.getrandbits
        if parent_span_context is None or not parent_span_context[IS_VALID]:
            parent_span_context = None
            if random_bits is None:
                trace_id = self.id_generator.generate_trace_id()
            else:
                trace_id = random_bits(128) or self.id_generator.generate_trace_id()
            random_id = self.random_trace_ids
        else:
            trace_id = parent_span_context[TRACE_ID]
            random_id = parent_span_context[TRACE_FLAGS] & _RANDOM_ID
        if self.sampler is DEFAULT_ON:
            # The default sampler (parentbased_always_on), decided without the call:
            # sample a new trace, follow the parent's sampled flag, keep its tracestate.
            sampled = parent_span_context is None or parent_span_context[TRACE_FLAGS] & _SAMPLED
            recording = sampled
            trace_state = parent_span_context[TRACE_STATE] if parent_span_context else None
        else:
            result = self.sampler.should_sample(parent, trace_id, name, kind, attributes)
            sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
            recording = result.decision.is_recording()  # type: ignore[no-untyped-call]
            trace_state = result.trace_state
            if result.attributes is not attributes:
                attributes = dict(result.attributes or {})
        flags = _FLAGS[(_SAMPLED if sampled else 0) | random_id]
        if random_bits is None:
            span_context = SpanContext(
                trace_id,
                self.id_generator.generate_span_id(),
                is_remote=False,
                trace_flags=flags,
                trace_state=trace_state,
            )
        else:
            # What SpanContext() makes, without its checks: both ids are in range and
            # not 0 (drawn, or the valid parent's), so the context is valid.
            span_context = _new_tuple(
                SpanContext,
                (
                    trace_id,
                    random_bits(64) or self.id_generator.generate_span_id(),
                    False,
                    flags,
                    DEFAULT_TRACE_STATE if trace_state is None else trace_state,
                    True,
                ),
            )
        if not recording:
            return NonRecordingSpan(span_context)
        span = ServerSpan(self, name, span_context, parent_span_context, attributes, kind)
        plan = self.plan
        if self.span_processor._span_processors is not plan.processors:
            plan = self.replan()
        for on_start in plan.starts:
            on_start(span, parent_context=parent)
        return span


class ServerSpan(trace.Span, ReadableSpan):
    """A recording SERVER span with the SDK Span's behaviour (limits, status rules,
    exception events) and none of its per-attribute locking and copying."""

    # Shared until a span has an event, a link or a drop, or ends: three objects fewer
    # per span, allocated in the request and freed in the export thread.
    _instrumentation_info = None
    _end_time: int | None = None
    _events: list[Event] | tuple[()] = ()
    _links: list[Link] | tuple[()] = ()
    _dropped: list[int] | tuple[int, int, int] = (0, 0, 0)  # attributes, events, links

    def __init__(
        self,
        factory: ServerSpanFactory,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        kind: SpanKind = SpanKind.SERVER,
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ would only copy them again).
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_scope = factory.scope
        self._parent = parent
        self._start_time: int | None = time_ns()
        self._attributes: dict[str, Any] = attributes
        self._resource = factory.resource
        self._status = _UNSET
        self._factory = factory

    # ReadableSpan: what exporters read.
    @property
    def attributes(self) -> types.Attributes:
        return MappingProxyType(self._attributes)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]

    # trace.Span: what instrumented code calls.
    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # always set here

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            _sdk_log.warning("Setting attribute on ended span.")
            return
        kind = type(value)
        max_length = self._factory.max_value_length
        if not (
            type(key) is str
            and key
            and (
                kind is int
                or kind is float
                or kind is bool
                or (kind is str and (max_length is None or len(value) <= max_length))  # type: ignore[arg-type]
            )
        ):
            cleaned = BoundedAttributes(
                None, {key: value}, immutable=False, max_value_len=max_length
            )
            if key not in cleaned:
                return  # invalid: BoundedAttributes logged why
            value = cleaned[key]
        attributes = self._attributes
        if key not in attributes and len(attributes) >= self._factory.max_attributes:
            del attributes[next(iter(attributes))]  # the SDK drops the oldest
            self._count_drop(0)
        attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None:
            return
        limits = self._factory.limits
        bounded = self._bounded(limits.max_event_attributes, attributes)
        if not self._events:
            self._events = []
        self._append(self._events, limits.max_events, 1)
        self._events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None:
            return
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        limits = self._factory.limits
        bounded = self._bounded(limits.max_link_attributes, attributes)
        if not self._links:
            self._links = []
        self._append(self._links, limits.max_links, 2)
        self._links.append(Link(context, bounded))

    def _bounded(
        self, max_attributes: int | None, attributes: types.Attributes
    ) -> BoundedAttributes:
        """An event's or link's attributes, limited and cleaned the SDK's way."""
        return BoundedAttributes(
            max_attributes,
            attributes,
            max_value_len=self._factory.limits.max_attribute_length,
            immutable=True,
        )

    def _append(self, entries: list[Any], limit: int | None, dropped_index: int) -> None:
        """Make room for one more event or link: the SDK drops the oldest at the limit."""
        if limit is not None and len(entries) >= limit:
            entries.pop(0)
            self._count_drop(dropped_index)

    def _count_drop(self, index: int) -> None:
        dropped = self._dropped
        if isinstance(dropped, tuple):  # the shared zeros: this span's own counts now
            dropped = self._dropped = [0, 0, 0]
        dropped[index] += 1

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """The SDK's rules: OK is final, UNSET is ignored."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                _sdk_log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event_attributes: dict[str, types.AnyValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            _sdk_log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        factory = self._factory
        plan = factory.plan
        if factory.span_processor._span_processors is not plan.processors:
            plan = factory.replan()
        for on_ending in plan.endings:
            on_ending(self)
        sampled = self._context[TRACE_FLAGS] & _SAMPLED  # type: ignore[index]  # always set
        for on_end, sampled_only in plan.ends:
            if sampled or not sampled_only:
                on_end(self)


read_span_context_with(ServerSpan, attrgetter("_context"))
