"""OpenTelemetry set-up: one TracerProvider per worker process, created after fork.

Server spans come from our TracingMiddleware (FastAPI's native telemetry is switched
off in main.py so a request is never traced twice). The standard OTEL_* variables
apply: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG),
OTEL_PROPAGATORS, OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS/TIMEOUT, OTEL_SDK_DISABLED,
OTEL_SPAN_*_LIMIT, OTEL_BSP_*.

Two parts of the SDK's path cost more than the whole bare request on a trivial route
(measured by `make bench`, see bench/README.md), so this module replaces them while the
SDK's TracerProvider, sampler, id generator, span processors and exporter stay in charge:
- ServerSpan: the request's span. The SDK Span locks, validates and copies every
  attribute through BoundedAttributes and copies itself into a ReadableSpan when it ends;
  a ServerSpan takes the middleware's known-good attributes as they are (anything set
  later is cleaned the SDK's way) and is itself the ReadableSpan the processors get.
- encode_spans / LeanOTLPSpanExporter: the upstream encoder builds a protobuf object per
  span, attribute and value and hashes each span's Resource (a JSON dump) to group the
  batch, in the export thread, which takes the GIL from the event loop. This writes the
  same OTLP wire format directly; tests check it decodes to the upstream encoder's message.
"""

from __future__ import annotations

import logging
import os
import struct
import traceback
from collections.abc import Mapping, Sequence
from time import time_ns
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
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
from opentelemetry.util import types

from service.logs import get_logger

log = get_logger(__name__)
_sdk_log = logging.getLogger(__name__)
_provider: TracerProvider | None = None


def otlp_endpoint_configured() -> bool:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def setup_tracing(service_name: str) -> TracerProvider:
    """Create and register this process's TracerProvider (idempotent per process).

    Without an OTLP endpoint spans are still created, so every log line inside a
    request carries a real trace_id/span_id; they are just not exported."""
    global _provider
    if _provider is not None:
        return _provider
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    exporting = otlp_endpoint_configured()
    if exporting:
        provider.add_span_processor(BatchSpanProcessor(LeanOTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing_configured", otlp_export=exporting, pid=os.getpid())
    return provider


def flush_tracing(timeout_ms: int = 1000) -> None:
    """Export what is buffered, bounded; called last during shutdown."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=timeout_ms)


# --- Server spans -------------------------------------------------------------------

_UNSET = Status(StatusCode.UNSET)
_FLAGS = {
    (sampled, random_id): TraceFlags(
        (TraceFlags.SAMPLED if sampled else 0) | (TraceFlags.RANDOM_TRACE_ID if random_id else 0)
    )
    for sampled in (False, True)
    for random_id in (False, True)
}


class ServerSpanFactory:
    """Starts ServerSpans with an SDK tracer's own sampler, id generator, resource and
    span processors (so OTEL_TRACES_SAMPLER and the exporter apply as usual)."""

    def __init__(self, tracer: SdkTracer, scope_name: str) -> None:
        self.sampler = tracer.sampler
        self.id_generator = tracer.id_generator
        self.random_trace_ids = tracer.id_generator.is_trace_id_random()
        self.resource = tracer.resource
        self.span_processor = tracer.span_processor
        self.scope = InstrumentationScope(scope_name)
        self.limits = SpanLimits()
        limit = self.limits.max_span_attributes
        self.max_attributes = limit if limit is not None else 1 << 31
        self.max_value_length = self.limits.max_span_attribute_length
        self.on_ending = getattr(self.span_processor, "_on_ending", None)

    @classmethod
    def for_current_provider(cls, scope_name: str) -> ServerSpanFactory | None:
        """A factory over the global TracerProvider, or None when that is not the SDK's
        (not set up yet, OTEL_SDK_DISABLED, another SDK): then use the plain API."""
        tracer = trace.get_tracer_provider().get_tracer(scope_name)
        return cls(tracer, scope_name) if isinstance(tracer, SdkTracer) else None

    def start(self, name: str, parent: Context, attributes: dict[str, Any]) -> trace.Span:
        """A SERVER span, child of the span in `parent` (an extracted context) if any.
        `attributes` must hold valid attribute values; the span keeps the dict."""
        parent_span_context: SpanContext | None = trace.get_current_span(parent).get_span_context()
        if parent_span_context is None or not parent_span_context.is_valid:
            parent_span_context = None
            trace_id = self.id_generator.generate_trace_id()
            random_id = self.random_trace_ids
        else:
            trace_id = parent_span_context.trace_id
            random_id = parent_span_context.trace_flags.random_trace_id
        if self.sampler is DEFAULT_ON:
            # The default sampler (parentbased_always_on), decided without the call:
            # sample a new trace, follow the parent's sampled flag, keep its tracestate.
            sampled = parent_span_context is None or parent_span_context.trace_flags.sampled
            recording = sampled
            trace_state = parent_span_context.trace_state if parent_span_context else None
        else:
            result = self.sampler.should_sample(parent, trace_id, name, SpanKind.SERVER, attributes)
            sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
            recording = result.decision.is_recording()  # type: ignore[no-untyped-call]
            trace_state = result.trace_state
            if result.attributes is not attributes:
                attributes = dict(result.attributes or {})
        span_context = SpanContext(
            trace_id,
            self.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[sampled, random_id],
            trace_state=trace_state,
        )
        if not recording:
            return NonRecordingSpan(span_context)
        span = ServerSpan(self, name, span_context, parent_span_context, attributes)
        self.span_processor.on_start(span, parent_context=parent)  # type: ignore[arg-type]
        return span


class ServerSpan(trace.Span, ReadableSpan):
    """A recording SERVER span with the SDK Span's behaviour (limits, status rules,
    exception events) and none of its per-attribute locking and copying."""

    def __init__(
        self,
        factory: ServerSpanFactory,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ would only copy them again).
        self._name = name
        self._context = context
        self._kind = SpanKind.SERVER
        self._instrumentation_info = None
        self._instrumentation_scope = factory.scope
        self._parent = parent
        self._start_time: int | None = time_ns()
        self._end_time: int | None = None
        self._attributes: dict[str, Any] = attributes
        self._events: list[Event] = []
        self._links: list[Link] = []
        self._resource = factory.resource
        self._status = _UNSET
        self._factory = factory
        self._dropped = [0, 0, 0]  # attributes, events, links

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
            self._dropped[0] += 1
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
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        if limits.max_events is not None and len(self._events) >= limits.max_events:
            self._events.pop(0)
            self._dropped[1] += 1
        self._events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None:
            return
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        limits = self._factory.limits
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        if limits.max_links is not None and len(self._links) >= limits.max_links:
            self._links.pop(0)
            self._dropped[2] += 1
        self._links.append(Link(context, bounded))

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
        if factory.on_ending is not None:
            factory.on_ending(self)
        factory.span_processor.on_end(self)


# --- OTLP/protobuf encoding, by hand ------------------------------------------------

_U64_MASK = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SMALL_VARINTS = [bytes((n,)) for n in range(128)]
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
# Span.flags and Link.flags: whether the parent is remote is known (0x100), and it is (0x200).
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200
# Encoded (key, value) pairs that repeat from span to span (method, route, scheme, ...),
# one cache per field tag, each bounded.
_ATTRIBUTE_CACHE_SIZE = 4096
_CACHED_TYPES = frozenset({str, int, bool, float})
_attribute_caches: dict[bytes, dict[tuple[str, object], tuple[type, bytes]]] = {}


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    """The body of an AnyValue message (same type order as the upstream encoder)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _len_field(b"\x0a", value.encode())
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer {value} out of int64 range")
        return b"\x18" + _varint(value & _U64_MASK)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _len_field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _len_field(b"\x2a", b"".join(_len_field(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_len_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _len_field(b"\x32", pairs)
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key_value(key: str, value: object) -> bytes:
    """The body of a KeyValue message."""
    encoded_key = _len_field(b"\x0a", key.encode()) if key else b""
    return encoded_key + _len_field(b"\x12", _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, object] | None) -> bytes:
    """A repeated KeyValue field; a value that cannot be encoded is left out (logged),
    as the upstream encoder does."""
    if not attributes:
        return b""
    cache = _attribute_caches.setdefault(tag, {})
    parts = []
    for item in attributes.items():
        value = item[1]
        try:
            hit = cache.get(item)
        except TypeError:  # an unhashable value (a list): not cached
            hit = None
        if hit is not None and hit[0] is type(value):  # True == 1 == 1.0: check the type
            parts.append(hit[1])
            continue
        try:
            encoded = tag + _len_field(b"", _key_value(item[0], value))
        except (TypeError, ValueError, UnicodeError) as exc:
            _sdk_log.error("Failed to encode key %s: %s", item[0], exc)
            continue
        if type(value) in _CACHED_TYPES:
            if len(cache) >= _ATTRIBUTE_CACHE_SIZE:
                cache.clear()
            cache[item] = (type(value), encoded)
        parts.append(encoded)
    return b"".join(parts)


def _flags(parent: SpanContext | None) -> bytes:
    flags = _FLAGS_HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _FLAGS_IS_REMOTE
    return _FIXED32.pack(flags)


def _encode_span(span: ReadableSpan) -> bytes:
    """One Span message, as the `spans` field of ScopeSpans."""
    context = span.get_span_context()
    assert context is not None
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
        parts.append(_len_field(b"\x1a", state.encode()))
    parent = span.parent
    if parent:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_len_field(b"\x2a", span.name.encode()))
    parts.append(b"\x30" + _SMALL_VARINTS[span.kind.value + 1])
    if span.start_time:
        parts.append(b"\x39" + _FIXED64.pack(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _FIXED64.pack(span.end_time))
    parts.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _FIXED64.pack(event.timestamp) if event.timestamp else b""
        if event.name:
            body += _len_field(b"\x12", event.name.encode())
        body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        parts.append(_len_field(b"\x5a", body))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        body = (
            b"\x0a\x10"
            + link.context.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + link.context.span_id.to_bytes(8, "big")
            + _attributes(b"\x22", link.attributes)
        )
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        parts.append(_len_field(b"\x6a", body + b"\x35" + _flags(link.context)))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        body = _len_field(b"\x12", status.description.encode()) if status.description else b""
        if status.status_code.value:
            body += b"\x18" + _varint(status.status_code.value)
        parts.append(_len_field(b"\x7a", body))
    parts.append(b"\x85\x01" + _flags(parent))
    return _len_field(b"\x12", b"".join(parts))


def _encode_scope(scope: InstrumentationScope | None) -> bytes:
    body = b""
    if scope is not None:
        if scope.name:
            body += _len_field(b"\x0a", scope.name.encode())
        if scope.version:
            body += _len_field(b"\x12", scope.version.encode())
        body += _attributes(b"\x1a", scope.attributes)
    return _len_field(b"\x0a", body)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """A serialized ExportTraceServiceRequest: spans grouped by resource, then by
    instrumentation scope, in the order first seen. Groups go by identity (the SDK
    gives every span of a tracer the same objects), not by the upstream encoder's
    per-span hash of the resource's attributes."""
    groups: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]]
    groups = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope
        by_scope = groups.get(id(resource))
        if by_scope is None:
            by_scope = groups[id(resource)] = (resource, {})
        entry = by_scope[1].get(id(scope))
        if entry is None:
            entry = by_scope[1][id(scope)] = (scope, [])
        entry[1].append(_encode_span(span))
    request = []
    for resource, scopes in groups.values():
        body = _len_field(b"\x0a", _attributes(b"\x0a", resource.attributes))
        for scope, encoded in scopes.values():
            scope_body = _encode_scope(scope) + b"".join(encoded)
            if scope is not None and scope.schema_url:
                scope_body += _len_field(b"\x1a", scope.schema_url.encode())
            body += _len_field(b"\x12", scope_body)
        if resource.schema_url:
            body += _len_field(b"\x1a", resource.schema_url.encode())
        request.append(_len_field(b"\x0a", body))
    return b"".join(request)


class LeanOTLPSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter (endpoint, headers, compression, timeout, retries, size
    limit: all its own) with encode_spans above in place of the upstream encoder. The
    body of export() follows the upstream one (opentelemetry-exporter-otlp-proto-http
    1.45.2) line for line but for the encoding."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _sdk_log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = encode_spans(spans)
            except Exception as error:
                _sdk_log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(serialized, self._max_request_size):
                _sdk_log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            exported = self._client.export(serialized)
            if not exported.success:
                result.error = exported.error
                if exported.status_code is not None:
                    result.error_attrs = {"http.response.status_code": exported.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
