"""The private members of dependencies that service/ relies on, pinned: a dependency
upgrade that moves one fails here, naming what to check, instead of in production.

PINNED is the one list. test_every_private_access_is_pinned walks service/ and fails on
an access to a private member (`x._name`, `getattr(x, "_name")`, an override or a field
set in a subclass of a dependency's class) that PINNED does not name; each other test
here pins one member's shape."""

from __future__ import annotations

import ast
import dis
import importlib
import inspect
import sys
from pathlib import Path

import pytest
from alembic import command
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from prometheus_client import CollectorRegistry, values
from uvicorn_worker import UvicornWorker

from service.data.migrations.runner import script_directory
from service.telemetry.span import ServerSpanFactory
from tests.unit.telemetry.test_otlp_exporter import UPGRADE_HINT as OTLP_HINT

SERVICE = Path(__file__).resolve().parents[2] / "service"

READABLE_SPAN = (
    "opentelemetry-sdk: ReadableSpan's fields. ServerSpan (service/telemetry/span.py) sets "
    "them itself instead of calling ReadableSpan.__init__: compare ReadableSpan.__init__ "
    "with ServerSpan.__init__ and set every field it sets."
)
PROMETHEUS_FILES = (
    "prometheus-client: FileValue (service/telemetry/metrics.py) writes a histogram child's "
    "_sum and _buckets and a gauge child's _value (MmapedValue: _file, _key, _value) "
    "straight into the MmapedDict (_positions, _m) as MmapedValue.inc does: compare "
    "values.MultiProcessValue's inc and MmapedDict.write_value/_init_value with FileValue, "
    "and Histogram.observe with Duration.observe; test_metrics.py's "
    "test_direct_file_writes_equal_prometheus_clients_own must pass."
)

SPAN_PROCESSORS = (
    "opentelemetry-sdk: the span processors' calls. ServerSpan (service/telemetry/span.py, "
    "with service/telemetry/span_processors.py) calls each processor of the provider's "
    "SynchronousMultiSpanProcessor itself (its _span_processors tuple, replaced when one "
    "is added, as ConcurrentMultiSpanProcessor's is): on_start, _on_ending (which the SDK "
    "Span.end calls before on_end) and on_end, skipping those whose body is `pass`; for a "
    "BatchSpanProcessor, its _batch_processor.emit for a sampled span, which is what its "
    "on_end does. Check Span.end, the multi span processors and "
    "BatchSpanProcessor.on_end, and follow them."
)
CURRENT_SPAN = (
    "opentelemetry-api: the current context and span. service/telemetry/current_span.py "
    "reads and sets the ContextVar of the contextvars runtime context "
    "(context._RUNTIME_CONTEXT._current_context) and the key set_span_in_context uses "
    "(trace.propagation._SPAN_KEY) as get_current_span, attach and detach do: compare "
    "them with opentelemetry/context/__init__.py, contextvars_context.py and "
    "trace/propagation/__init__.py."
)

PINNED = {
    **dict.fromkeys(["_on_ending", "_span_processors", "_batch_processor"], SPAN_PROCESSORS),
    **dict.fromkeys(["_RUNTIME_CONTEXT", "_current_context", "_SPAN_KEY"], CURRENT_SPAN),
    "_serve": (
        "uvicorn-worker: UvicornWorker.run runs `await self._serve()`, which "
        "GracefulUvicornWorker (service/server/worker.py) overrides to serve a "
        "DrainingServer: check run and _serve, and follow them."
    ),
    "_tracer": (
        "opentelemetry-api: ProxyTracer._tracer, the provider's tracer behind a tracer "
        "taken before the provider was set. start_client_span "
        "(service/telemetry/dependency_spans.py) unwraps it to start its lean span: check "
        "ProxyTracer."
    ),
    "_multiprocess": (
        "prometheus-client: values.ValueClass._multiprocess, true when the value class "
        "writes to PROMETHEUS_MULTIPROC_DIR (service/telemetry/metrics.py "
        "multiprocess_mode, service/server/metrics_listener.py prepare): check "
        "prometheus_client/values.py (MutexValue, MultiProcessValue, get_value_class)."
    ),
    "_upgrade_revs": (
        "alembic: ScriptDirectory._upgrade_revs(destination, current_rev), what "
        "alembic.command.upgrade passes to EnvironmentContext as fn; "
        "service/data/migrations/runner.py does the same: compare with command.upgrade."
    ),
    **dict.fromkeys(
        ["_sum", "_buckets", "_value", "_file", "_key", "_positions", "_m"],
        PROMETHEUS_FILES,
    ),
    **dict.fromkeys(
        [
            "_shutdown",
            "_max_request_size",
            "_metrics",
            "_client",
            "_is_request_too_large",
            "_endpoint",
            "_load_http_transport_factory",
        ],
        f"opentelemetry-exporter-otlp-proto-http (tests/unit/telemetry/test_otlp_exporter.py "
        f"pins them): {OTLP_HINT}",
    ),
    **dict.fromkeys(
        [
            "_name",
            "_context",
            "_kind",
            "_instrumentation_info",
            "_instrumentation_scope",
            "_parent",
            "_start_time",
            "_end_time",
            "_attributes",
            "_events",
            "_links",
            "_resource",
            "_status",
        ],
        READABLE_SPAN,
    ),
}
ATTRIBUTE_CALLS = {"getattr", "hasattr", "setattr", "delattr"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def dependency_members(cls: type, package: str) -> set[str]:
    """What the classes of other packages in cls's MRO define or set on their instances."""
    names: set[str] = set()
    for base in cls.__mro__:
        if base.__module__.split(".")[0] == package:
            continue
        names |= set(vars(base))
        for member in vars(base).values():
            func = member.fget if isinstance(member, property) else member
            code = getattr(getattr(func, "__func__", func), "__code__", None)
            if code is not None:
                names |= {i.argval for i in dis.get_instructions(code) if i.opname == "STORE_ATTR"}
    return names


class Finder(ast.NodeVisitor):
    """Private names a module uses: (where, name, class it is used in on self or None)."""

    def __init__(self, module: str, where: str) -> None:
        self.module, self.where = module, where
        self.classes: list[type | None] = []  # the enclosing class, if any (methods included)
        self.in_class_body = False
        self.uses: list[tuple[str, str, type | None]] = []
        self.own: list[tuple[str, type | None]] = []  # defined in our classes

    def note(self, node: ast.AST, name: str, on_self: bool, defines: bool = False) -> None:
        cls = self.classes[-1] if self.classes and on_self else None
        self.uses.append((f"{self.where}:{getattr(node, 'lineno', 0)}", name, cls))
        if defines:
            self.own.append((name, cls))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # the class itself, to know its bases (imported only for modules with classes)
        outer = self.classes[-1] if self.classes else importlib.import_module(self.module)
        self.classes.append(getattr(outer, node.name, None))
        body, self.in_class_body = self.in_class_body, True
        self.generic_visit(node)
        self.classes.pop()
        self.in_class_body = body

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self.in_class_body and is_private(node.name):
            self.note(node, node.name, on_self=True, defines=True)
        body, self.in_class_body = self.in_class_body, False
        self.generic_visit(node)
        self.in_class_body = body

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        package = self.module.split(".")[0]
        if node.level == 0 and (node.module or "").split(".")[0] != package:
            for alias in node.names:
                if is_private(alias.name):
                    self.note(node, alias.name, on_self=False)

    def visit_Name(self, node: ast.Name) -> None:
        if self.in_class_body and isinstance(node.ctx, ast.Store) and is_private(node.id):
            self.note(node, node.id, on_self=True, defines=True)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_private(node.attr):
            on_self = on_self_or_super(node.value)
            stored = isinstance(node.ctx, ast.Store)
            self.note(node, node.attr, on_self, defines=on_self and stored)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_CALLS
            and len(node.args) >= 2
            and isinstance(name := node.args[1], ast.Constant)
            and isinstance(name.value, str)
            and is_private(name.value)
        ):
            self.note(node, name.value, on_self_or_super(node.args[0]))
        self.generic_visit(node)


def on_self_or_super(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def dependency_private_uses(root: Path, package: str) -> dict[str, list[str]]:
    """Private names of other packages that the modules under root (importable as
    `package`) use: name -> where. Used on self in a class, a name is a dependency's when
    a base class of another package has it; used on anything else, when none of the
    package's own classes defines it (a dependency member named like one of ours is
    missed)."""
    uses: list[tuple[str, str, type | None]] = []
    own: list[tuple[str, type | None]] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        name = ".".join(part for part in relative.parts if part != "__init__")
        finder = Finder(name, str(path.relative_to(root.parent)))
        finder.visit(ast.parse(path.read_text()))
        uses += finder.uses
        own += finder.own

    def theirs(name: str, cls: type | None) -> bool:
        return cls is not None and name in dependency_members(cls, package)

    ours = {name for name, cls in own if not theirs(name, cls)}
    found: dict[str, list[str]] = {}
    for where, name, cls in uses:
        if theirs(name, cls) or (cls is None and name not in ours):
            found.setdefault(name, []).append(where)
    return found


def test_every_private_access_is_pinned() -> None:
    found = dependency_private_uses(SERVICE, "service")
    unpinned = {name: where for name, where in found.items() if name not in PINNED}
    assert not unpinned, (
        f"private members of dependencies used without a pin: {unpinned}. Use a public API, "
        "or add the name to PINNED in tests/unit/test_private_members.py (what to check "
        "after an upgrade) with a test of the shape the service relies on."
    )
    stale = sorted(set(PINNED) - set(found))
    assert not stale, f"PINNED names what service/ no longer uses: {stale}; remove them"


def test_the_walker_finds_accesses_overrides_and_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "other.py").write_text("_ours_too = 1\n")
    (package / "mod.py").write_text(
        "import logging\n"
        "class Ours:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def _helper(self):\n"
        "        return self._mine\n"
        "class Handler(logging.Handler):\n"
        "    def _own_name(self):\n"
        "        self._closed = True\n"  # logging.Handler.__init__ sets _closed
        "        return super()._at_fork_reinit()\n"
        "def use(x, handler):\n"
        "    Ours()._helper()\n"
        "    handler._own_name()\n"
        "    return x._theirs, getattr(x, '_by_name', None)\n"
        "from logging import _lock\n"
        "from probe_pkg.other import _ours_too\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = dependency_private_uses(package, "probe_pkg")
    finally:
        for name in ("probe_pkg", "probe_pkg.mod", "probe_pkg.other"):
            sys.modules.pop(name, None)
    assert sorted(found) == ["_at_fork_reinit", "_by_name", "_closed", "_lock", "_theirs"], found
    assert found["_theirs"] == ["probe_pkg/mod.py:14"]


# One test per member: the shape service/ relies on.


def test_span_processors_are_called_as_the_sdk_span_calls_them() -> None:
    calls: list[tuple[str, object]] = []

    class Recorder(SpanProcessor):
        def on_start(self, span: object, parent_context: object = None) -> None:
            calls.append(("on_start", span))

        def _on_ending(self, span: object) -> None:
            calls.append(("_on_ending", span))

        def on_end(self, span: object) -> None:
            calls.append(("on_end", span))

    provider = TracerProvider()
    tracer = provider.get_tracer("pin")
    assert isinstance(tracer, SdkTracer), PINNED["_on_ending"]
    factory = ServerSpanFactory(tracer, "pin")
    provider.add_span_processor(Recorder())  # after the factory: the plan follows
    assert factory.replan().processors == tracer.span_processor._span_processors, PINNED[
        "_span_processors"
    ]
    span = factory.start("GET /pin", Context(), {})
    span.end()
    expected = [("on_start", span), ("_on_ending", span), ("on_end", span)]
    assert calls == expected, PINNED["_on_ending"]
    # and the SDK's own spans make the same calls, in the same order
    with tracer.start_as_current_span("sdk") as sdk_span:
        pass
    assert [name for name, _ in calls[3:]] == ["on_start", "_on_ending", "on_end"], PINNED[
        "_on_ending"
    ]
    assert calls[3][1] is sdk_span


def test_batch_span_processor_on_end_queues_sampled_spans_with_emit() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanContext, TraceFlags

    processor = BatchSpanProcessor(InMemorySpanExporter())
    queued: list[object] = []
    processor._batch_processor.emit = queued.append  # type: ignore[method-assign,assignment]
    try:
        sampled = ReadableSpan("s", SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED)))
        unsampled = ReadableSpan("u", SpanContext(1, 3, False, TraceFlags(0)))
        processor.on_end(sampled)
        processor.on_end(unsampled)
        assert queued == [sampled], PINNED["_batch_processor"]
        lines = [
            line.strip()
            for line in inspect.getsource(BatchSpanProcessor.on_end).splitlines()[1:]
            if line.strip()
        ]
        assert lines == [
            "if not (span.context and span.context.trace_flags.sampled):",
            "return",
            "self._batch_processor.emit(span)",
        ], PINNED["_batch_processor"]
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]


def test_the_current_span_lives_in_the_runtime_contexts_contextvar() -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    from opentelemetry.trace.propagation import _SPAN_KEY

    runtime = otel_context._RUNTIME_CONTEXT
    assert type(runtime) is ContextVarsRuntimeContext, PINNED["_RUNTIME_CONTEXT"]
    span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    context = trace.set_span_in_context(span)
    assert context[_SPAN_KEY] is span, PINNED["_SPAN_KEY"]
    token = otel_context.attach(context)
    try:
        assert runtime._current_context.get() is context, PINNED["_current_context"]
        assert otel_context.get_current() is context, PINNED["_current_context"]
    finally:
        otel_context.detach(token)
    assert "self._current_context.reset(token)" in inspect.getsource(runtime.detach), PINNED[
        "_current_context"
    ]


def test_server_span_sets_every_field_readable_span_sets() -> None:
    fields = set(vars(ReadableSpan(name="pin")))
    assert fields == {name for name, hint in PINNED.items() if hint == READABLE_SPAN}, (
        f"ReadableSpan now sets {sorted(fields)}. {READABLE_SPAN}"
    )
    tracer = TracerProvider().get_tracer("pin")
    assert isinstance(tracer, SdkTracer)
    span = ServerSpanFactory(tracer, "pin").start("GET /pin", Context(), {"k": "v"})
    # set on the span, or shared by ServerSpan until a span has its own
    assert all(hasattr(span, field) for field in fields), READABLE_SPAN
    readable = ReadableSpan(name="pin")
    readable.__dict__.update({f: getattr(span, f) for f in fields})
    assert json_of(readable) == json_of(span), READABLE_SPAN  # read the same way
    span.add_event("e")
    span.end()
    readable.__dict__.update({f: getattr(span, f) for f in fields})
    assert json_of(readable) == json_of(span), READABLE_SPAN


def json_of(span: object) -> str:
    return ReadableSpan.to_json(span)  # type: ignore[arg-type,no-any-return]


def test_uvicorn_worker_run_awaits_serve() -> None:
    serve = inspect.getattr_static(UvicornWorker, "_serve", None)
    assert inspect.iscoroutinefunction(serve), PINNED["_serve"]
    assert list(inspect.signature(serve).parameters) == ["self"], PINNED["_serve"]
    assert "_serve" in UvicornWorker.run.__code__.co_names, PINNED["_serve"]


def test_proxy_tracer_unwraps_to_the_provider_tracer() -> None:
    proxy = trace.ProxyTracer("pin")
    assert isinstance(inspect.getattr_static(trace.ProxyTracer, "_tracer"), property)
    assert isinstance(proxy._tracer, trace.Tracer), PINNED["_tracer"]


def test_prometheus_value_class_tells_multiprocess_mode() -> None:
    # metrics_listener.prepare also calls values.get_value_class() (public, no pin)
    assert values.MutexValue._multiprocess is False, PINNED["_multiprocess"]
    multiprocess_value = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    assert multiprocess_value._multiprocess is True, PINNED["_multiprocess"]


def test_prometheus_multiprocess_value_shape() -> None:
    """The members FileValue reads; the behaviour is pinned in test_metrics.py."""
    from prometheus_client import Gauge, Histogram
    from prometheus_client.mmap_dict import MmapedDict

    inc = inspect.getsource(values.MultiProcessValue().inc)  # type: ignore[no-untyped-call]
    assert "self._file.write_value(self._key, self._value, self._timestamp)" in inc, PINNED["_file"]
    write = inspect.getsource(MmapedDict.write_value)
    assert "self._positions[key]" in write and "_pack_two_doubles(self._m, pos" in write, PINNED[
        "_m"
    ]
    registry = CollectorRegistry()
    histogram = Histogram("pin_h", "pin", ["l"], buckets=(1.0, 2.0), registry=registry)
    child = histogram.labels("x")
    assert len(child._buckets) == 3 and hasattr(child, "_sum"), PINNED["_buckets"]
    gauge = Gauge("pin_g", "pin", ["l"], registry=registry).labels("x")
    assert hasattr(gauge, "_value"), PINNED["_value"]


def test_alembic_upgrade_revs_lists_the_steps_to_a_target() -> None:
    hint = PINNED["_upgrade_revs"]
    assert "script._upgrade_revs(revision, rev)" in inspect.getsource(command.upgrade), hint
    script = script_directory()
    ordered = [s.revision for s in reversed(list(script.walk_revisions()))]
    steps = script._upgrade_revs("heads", ordered[0])
    assert [step.revision.revision for step in steps] == ordered[1:], hint


def test_otlp_request_size_check() -> None:
    from opentelemetry.exporter.otlp.proto.http._common import _is_request_too_large

    hint = PINNED["_is_request_too_large"]
    assert _is_request_too_large(b"x" * 11, 10) is True, hint
    assert _is_request_too_large(b"x" * 10, 10) is False, hint
    assert _is_request_too_large(b"x" * 11, 0) is False, hint  # 0: no limit
