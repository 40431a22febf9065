"""The span processors a ServerSpan calls, planned once per set of processors.

The provider's SynchronousMultiSpanProcessor calls every processor's on_start,
_on_ending and on_end in turn, most of which do nothing (a BatchSpanProcessor's first
two), and a BatchSpanProcessor's on_end reads three properties before it queues the span:
about a dozen Python calls per span. A plan keeps the calls that do something, and for a
BatchSpanProcessor its queue's emit, called for sampled spans only: what its on_end does
(pinned by tests/unit/test_private_members.py, with the private members read here)."""

from __future__ import annotations

import dis
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor


class ProcessorPlan(NamedTuple):
    """What a span's start and end call, for the span processors a provider has now."""

    processors: tuple[SpanProcessor, ...]  # what it was made for
    starts: tuple[Callable[..., None], ...]
    endings: tuple[Callable[[Any], None], ...]
    # In the processors' order: (the call, whether only sampled spans get it).
    ends: tuple[tuple[Callable[[Any], None], bool], ...]


def does_nothing(function: object) -> bool:
    """True for a function whose body is `pass` (or a docstring): returns None at once."""
    code = getattr(function, "__code__", None)
    if code is None or code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE):
        return False
    steps = [(step.opname, step.argval) for step in dis.get_instructions(code)]
    steps = [step for step in steps if step[0] not in ("RESUME", "NOP")]
    return steps in (
        [("LOAD_CONST", None), ("RETURN_VALUE", None)],
        [("RETURN_CONST", None)],
    )


def processor_plan(
    span_processor: SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor,
) -> ProcessorPlan:
    """The plan for a tracer's span processor (the provider's active one: both kinds keep
    their processors in a tuple they replace when one is added)."""
    processors = span_processor._span_processors
    if type(span_processor) is not SynchronousMultiSpanProcessor:
        # Another multi-processor (ConcurrentMultiSpanProcessor): called as the SDK does.
        return ProcessorPlan(
            processors,
            (span_processor.on_start,),
            (span_processor._on_ending,),
            ((span_processor.on_end, False),),
        )
    starts: list[Callable[..., None]] = []
    endings: list[Callable[[Any], None]] = []
    ends: list[tuple[Callable[[Any], None], bool]] = []
    for processor in processors:
        if not does_nothing(type(processor).on_start):
            starts.append(processor.on_start)
        on_ending = getattr(processor, "_on_ending", None)
        if on_ending is not None and not does_nothing(getattr(type(processor), "_on_ending", None)):
            endings.append(on_ending)
        if type(processor) is BatchSpanProcessor:  # its on_end: queue a sampled span
            ends.append((processor._batch_processor.emit, True))
        elif not does_nothing(type(processor).on_end):
            ends.append((processor.on_end, False))
    return ProcessorPlan(processors, (*starts,), (*endings,), (*ends,))
