"""encode_spans: OTLP/protobuf (ExportTraceServiceRequest) written directly.

The upstream encoder builds a protobuf object per span, attribute and value and hashes
each span's Resource (a JSON dump) to group the batch, in the export thread, which takes
the GIL from the event loop. This writes the same wire format directly; the unit tests
check that it decodes to the upstream encoder's message for spans of every shape."""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from service.telemetry.current_span import IS_REMOTE, SPAN_ID, TRACE_ID, TRACE_STATE
from service.telemetry.span import ServerSpan

_sdk_log = logging.getLogger(__name__)


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
_attribute_caches: defaultdict[bytes, dict[tuple[str, object], tuple[type, bytes]]]
_attribute_caches = defaultdict(dict)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL_VARINTS[value]
    if value < 0x4000:  # two bytes: a span's length (a few hundred) is always here
        return bytes(((value & 0x7F) | 0x80, value >> 7))
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
    cache = _attribute_caches[tag]
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


# Span.kind as the field it is written as; Span.flags for a local and a remote parent.
_KINDS = {kind: b"\x30" + _SMALL_VARINTS[kind.value + 1] for kind in SpanKind}
# The fixed-size fields as one pack each: trace_id (two big-endian halves) and span_id
# with their tags; parent_span_id; start and end times (fixed64, little-endian).
_IDS = struct.Struct(">HQQHQ")
_PARENT_ID = struct.Struct(">HQ")
_TIMES = struct.Struct("<BQBQ")
# A status without description: its code alone.
_STATUSES = {
    code: b"\x7a\x02\x18" + _SMALL_VARINTS[code.value] if code.value else b"\x7a\x00"
    for code in StatusCode
}
_STATUS_UNSET = _STATUSES[StatusCode.UNSET]
_KIND_SERVER, _KIND_CLIENT = _KINDS[SpanKind.SERVER], _KINDS[SpanKind.CLIENT]
# The members compared per span, read once (an Enum class attribute costs a lookup each time).
_SERVER, _CLIENT, _UNSET = SpanKind.SERVER, SpanKind.CLIENT, StatusCode.UNSET
# Span names repeat (one per route and method): their encoded field, bounded.
_NAME_CACHE_SIZE = 1024
_names: dict[str, bytes] = {}
_FLAGS_LOCAL = b"\x85\x01" + _FIXED32.pack(_FLAGS_HAS_IS_REMOTE)
_FLAGS_REMOTE = b"\x85\x01" + _FIXED32.pack(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)


def _flags(parent: SpanContext | None) -> bytes:
    flags = _FLAGS_HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _FLAGS_IS_REMOTE
    return _FIXED32.pack(flags)


def _plain_span(span: ServerSpan) -> bytes:
    """_span_message for the usual ServerSpan (a request's or a command's: no events,
    links, trace state or drops, a status without description, both times set), written
    in one function: the same bytes at two thirds of the cost (`make bench`'s export
    floor); tests/unit/telemetry/test_otlp_encoding.py compares the two."""
    context = span._context
    parent = span._parent
    trace_id = context[TRACE_ID]  # type: ignore[index]  # always set on a ServerSpan
    name = span._name
    encoded_name = _names.get(name)
    if encoded_name is None:
        if len(_names) >= _NAME_CACHE_SIZE:
            _names.clear()
        encoded_name = _names[name] = _len_field(b"\x2a", name.encode()) if name else b""
    kind = span._kind
    status_code = span._status.status_code
    body = b"".join(
        (
            _IDS.pack(0x0A10, trace_id >> 64, trace_id & _U64_MASK, 0x1208, context[SPAN_ID]),  # type: ignore[index]
            b"" if parent is None else _PARENT_ID.pack(0x2208, parent[SPAN_ID]),
            encoded_name,
            _KIND_SERVER if kind is _SERVER else _KIND_CLIENT if kind is _CLIENT else _KINDS[kind],
            _TIMES.pack(0x39, span._start_time, 0x41, span._end_time),
            _attributes(b"\x4a", span._attributes),
            _STATUS_UNSET if status_code is _UNSET else _STATUSES[status_code],
            _FLAGS_REMOTE if parent is not None and parent[IS_REMOTE] else _FLAGS_LOCAL,
        )
    )
    return b"\x12" + _varint(len(body)) + body


def _encode_span(span: ReadableSpan) -> bytes:
    """One Span message, as the `spans` field of ScopeSpans. A ServerSpan's fields are read
    as they are (ReadableSpan's properties copy them: a third of the encoding's time)."""
    if type(span) is ServerSpan:
        dropped = span._dropped
        if (
            not span._events
            and not span._links
            and not (dropped[0] or dropped[1] or dropped[2])
            and span._context[TRACE_STATE] is DEFAULT_TRACE_STATE  # type: ignore[index]
            and span._status.description is None
            and span._start_time
            and span._end_time
        ):
            return _plain_span(span)
        return _span_message(
            span._context,
            span._parent,
            span._name,
            span._kind,
            span._start_time,
            span._end_time,
            span._attributes,
            span._events,
            span._links,
            span._status,
            dropped,
        )
    return _span_message(
        span.get_span_context(),
        span.parent,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.attributes,
        span.events,
        span.links,
        span.status,
        (span.dropped_attributes, span.dropped_events, span.dropped_links),
    )


def _span_message(
    context: SpanContext | None,
    parent: SpanContext | None,
    name: str,
    kind: SpanKind,
    start_time: int | None,
    end_time: int | None,
    attributes: Mapping[str, object] | None,
    events: Sequence[Event],
    links: Sequence[Link],
    status: Status | None,
    dropped: Sequence[int],  # attributes, events, links
) -> bytes:
    assert context is not None
    trace_id = context.trace_id
    parts = [_IDS.pack(0x0A10, trace_id >> 64, trace_id & _U64_MASK, 0x1208, context.span_id)]
    if context.trace_state is not DEFAULT_TRACE_STATE and context.trace_state:
        state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
        parts.append(_len_field(b"\x1a", state.encode()))
    if parent:
        parts.append(_PARENT_ID.pack(0x2208, parent.span_id))
    if name:
        encoded_name = _names.get(name)
        if encoded_name is None:
            if len(_names) >= _NAME_CACHE_SIZE:
                _names.clear()
            encoded_name = _names[name] = _len_field(b"\x2a", name.encode())
        parts.append(encoded_name)
    # Enum members hash in Python: the usual kinds are told apart by identity.
    parts.append(
        _KIND_SERVER if kind is _SERVER else _KIND_CLIENT if kind is _CLIENT else _KINDS[kind]
    )
    if start_time and end_time:
        parts.append(_TIMES.pack(0x39, start_time, 0x41, end_time))
    elif start_time:
        parts.append(b"\x39" + _FIXED64.pack(start_time))
    elif end_time:
        parts.append(b"\x41" + _FIXED64.pack(end_time))
    parts.append(_attributes(b"\x4a", attributes))
    if dropped[0]:
        parts.append(b"\x50" + _varint(dropped[0]))
    for event in events:
        body = b"\x09" + _FIXED64.pack(event.timestamp) if event.timestamp else b""
        if event.name:
            body += _len_field(b"\x12", event.name.encode())
        body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        parts.append(_len_field(b"\x5a", body))
    if dropped[1]:
        parts.append(b"\x60" + _varint(dropped[1]))
    for link in links:
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
    if dropped[2]:
        parts.append(b"\x70" + _varint(dropped[2]))
    if status is not None:
        if status.description:
            body = _len_field(b"\x12", status.description.encode())
            code = status.status_code.value
            if code:
                body += b"\x18" + _varint(code)
            parts.append(_len_field(b"\x7a", body))
        elif status.status_code is _UNSET:
            parts.append(_STATUS_UNSET)
        else:
            parts.append(_STATUSES[status.status_code])
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
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
    per-span hash of the resource's attributes: one lookup per span, by the pair."""
    groups: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]]
    groups = {}
    by_pair: dict[tuple[int, int], list[bytes]] = {}
    for span in spans:
        if type(span) is ServerSpan:  # its fields, not ReadableSpan's properties
            resource, scope = span._resource, span._instrumentation_scope
        else:
            resource, scope = span.resource, span.instrumentation_scope
        encoded = by_pair.get((id(resource), id(scope)))
        if encoded is None:
            by_scope = groups.get(id(resource))
            if by_scope is None:
                by_scope = groups[id(resource)] = (resource, {})
            encoded = by_pair[id(resource), id(scope)] = []
            by_scope[1][id(scope)] = (scope, encoded)
        encoded.append(_encode_span(span))
    # Written as one list joined once: each nesting level's length is the sum of its
    # parts' (a concatenation per level would copy the whole batch each time).
    request: list[bytes] = []
    for resource, scopes in groups.values():
        resource_parts = [_len_field(b"\x0a", _attributes(b"\x0a", resource.attributes))]
        for scope, encoded in scopes.values():
            scope_parts = [_encode_scope(scope), *encoded]
            if scope is not None and scope.schema_url:
                scope_parts.append(_len_field(b"\x1a", scope.schema_url.encode()))
            resource_parts += (b"\x12", _varint(sum(map(len, scope_parts))), *scope_parts)
        if resource.schema_url:
            resource_parts.append(_len_field(b"\x1a", resource.schema_url.encode()))
        request += (b"\x0a", _varint(sum(map(len, resource_parts))), *resource_parts)
    return b"".join(request)
