"""The current OpenTelemetry span, and the fields of a SpanContext, in as few calls as the
request path can take.

The API reaches the current span through five Python calls (get_current_span, get_value,
get_current, the runtime context's get_current, an ABC instance check), makes a span
current through four (set_span_in_context, set_value, attach, the runtime's attach), and
reads every SpanContext field through a property. On /api/items/{id} that was a third
of the Python calls observability adds to a request, and in a running app a call costs
far more than in a loop (docs/observability-cost.md). This reads and sets the same
ContextVar and the same tuple fields directly.

It relies on private members of opentelemetry-api: the contextvars runtime context's
ContextVar, the current-span key, and SpanContext's field order
(tests/unit/test_private_members.py pins them; tests/unit/telemetry/test_current_span.py
checks every function here against the API's). Any other runtime context
(OTEL_PYTHON_CONTEXT) takes the API's own calls."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from operator import methodcaller
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span, SpanContext
from opentelemetry.trace.propagation import _SPAN_KEY

# Where set_span_in_context puts the span in a Context.
SPAN_KEY = _SPAN_KEY
# SpanContext is a tuple: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
TRACE_ID: Final = 0
SPAN_ID: Final = 1
IS_REMOTE: Final = 2
TRACE_FLAGS: Final = 3
TRACE_STATE: Final = 4
IS_VALID: Final = 5

_runtime = otel_context._RUNTIME_CONTEXT
current_context: Callable[[], Context]
_set: Callable[[Context], Token[Context]]
_reset: Callable[[Token[Context]], None]
if type(_runtime) is ContextVarsRuntimeContext:
    current_context = _runtime._current_context.get
    _set = _runtime._current_context.set
    _reset = _runtime._current_context.reset
else:  # another runtime context: the API's calls
    current_context = otel_context.get_current
    _set = otel_context.attach
    _reset = otel_context.detach

# How to read the SpanContext of a span of each class found to be a Span (the API's
# isinstance check is an ABC's, a Python call each time; a class once a Span stays one):
# its get_span_context(), or what the class registers (ServerSpan: its field).
_readers: dict[type, Callable[[Any], SpanContext]] = {}
_GET_SPAN_CONTEXT = methodcaller("get_span_context")


def read_span_context_with(span_class: type, reader: Callable[[Any], SpanContext]) -> None:
    """How current_span_context reads a `span_class` span's SpanContext: a C callable
    (operator.attrgetter) saves a Python call per read."""
    _readers[span_class] = reader


def current_span_context(context: Context | None = None) -> SpanContext:
    """trace.get_current_span(context).get_span_context()."""
    span = (current_context() if context is None else context).get(SPAN_KEY)
    reader = _readers.get(type(span))
    if reader is None:
        if span is None or not isinstance(span, Span):
            return INVALID_SPAN_CONTEXT
        reader = _readers[type(span)] = _GET_SPAN_CONTEXT
    return reader(span)


def attach_span(span: Span, parent: Context) -> Token[Context]:
    """attach(set_span_in_context(span, parent)): `span` current, in `parent`'s context."""
    context = dict(parent)
    context[SPAN_KEY] = span
    return _set(Context(context))


def detach(token: Token[Context]) -> None:
    """Undo attach_span. A token that cannot be reset (another context made it) goes to
    the API's detach, which logs why, as it would have."""
    try:
        _reset(token)
    except Exception:
        otel_context.detach(token)
