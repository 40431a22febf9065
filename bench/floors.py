# Usage: .venv/bin/python -m bench.floors [--smoke]   (prints one JSON object; make bench runs it)
"""A floor per observability job: the least a Python process can spend on it, measured in
one process next to ours.

For each job of ObservabilityMiddleware (request_id, span, log_context, access_line,
metrics; "layer" = none of them, "all" = all five), a request is driven through
  ours   ObservabilityMiddleware(trivial app, jobs={job}), set up as in a worker: the
         SDK's TracerProvider without export (OTEL_TRACES_EXPORTER=none), the product's
         logging with its JsonLineHandler writing to a real file, AppMetrics in
         prometheus_client's multiprocess mode;
  floor  FloorLayer(trivial app, jobs={job}) below: a pure-ASGI layer doing only that
         job the cheapest defensible way;
and the trivial app alone (a 200 with a small JSON body); each side's cost is its CPU time
per request minus the trivial app's. Export: encode_spans (the product's OTLP encoding)
against floor_encode (the same OTLP message from the floor's span tuples, struct and
bytes.join) over a batch of 512 server spans made by the product's middleware; per span.

Timing: time.process_time over a batch of requests with the garbage collector off (as
timeit does), candidates alternating batch by batch, the best batch of several counting
(noise only adds time); the process is pinned to one core. Requests are driven without
an event loop (nothing here awaits anything that blocks), so only the layers' own work is
measured. Checks keep the floors honest: the same response headers, access lines with
the same fields, and an OTLP batch that decodes to the same message as ours.
Run in its own process (bench/run.py starts it): the provider, the logging set-up and
PROMETHEUS_MULTIPROC_DIR are process-wide."""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import logging
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send

JOB_NAMES = ("request_id", "span", "log_context", "access_line", "metrics")
# Rows of the table: (name, jobs). "layer": a layer with no job, what any layer costs.
ROWS: tuple[tuple[str, frozenset[str]], ...] = (
    ("layer", frozenset()),
    *((job, frozenset({job})) for job in JOB_NAMES),
    ("all", frozenset(JOB_NAMES)),
)
EXPORT_ROW = "export"
APP_VERSION = "1.0.0"
SERVICE = "api"
PROBE_PREFIX = "/health/"


class FloorError(Exception):
    """The floors' process failed (a floor that does not match ours fails it)."""


@dataclass(frozen=True)
class Sizes:
    calls: int  # requests per timed batch
    repeats: int  # batches per candidate; the best one counts
    spans: int = 512  # spans per export batch (the BatchSpanProcessor's default)


FULL = Sizes(calls=20_000, repeats=7)
SMOKE = Sizes(calls=2_000, repeats=5)

# -- The trivial app and the harness -----------------------------------------------------


class Route:
    """What the router leaves in scope["route"]: the template is all the layers read."""

    def __init__(self, path: str) -> None:
        self.path = path


ROUTES = {"/api/ping": Route("/api/ping"), "/api/items/1": Route("/api/items/{item_id}")}
BODY = b'{"status":"ok"}'
# A request as wrk sends it (the load of `make bench`): a Host header only.
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50312),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/api/ping",
    "raw_path": b"/api/ping",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000")],
}


async def trivial_app(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = ROUTES[scope["path"]]
    # New messages every time: layers replace the start message's headers.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


async def receive_nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send_nowhere(message: Message) -> None:
    return None


def request(app: ASGIApp, send: Send = send_nowhere, path: str = "/api/ping") -> None:
    """One request through `app`, to the end, without an event loop."""
    scope = dict(SCOPE)
    if path != scope["path"]:
        scope["path"] = path
        scope["raw_path"] = path.encode()
    coroutine = cast(Coroutine[Any, Any, None], app(scope, receive_nothing, send))
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("the app waited for something: the harness runs synchronous paths only")


def batch_us(run: Callable[[], object], calls: int) -> float:
    """CPU microseconds per call over one batch, the garbage collector off (as in timeit)."""
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        for _ in range(calls):
            run()
        return (time.process_time() - started) * 1e6 / calls
    finally:
        gc.enable()


def best_of(
    candidates: dict[str, Callable[[], object]],
    calls: int,
    repeats: int,
    between: Callable[[], None],
) -> dict[str, float]:
    """Each candidate's best batch, candidates alternating batch by batch (the order
    rotates, so a slow phase of the machine does not always hit the same one)."""
    names = list(candidates)
    best = dict.fromkeys(names, math.inf)
    for name in names:  # warm-up: lazy set-up (span factories, label children) happens now
        for _ in range(min(calls, 200)):
            candidates[name]()
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            between()
            best[name] = min(best[name], batch_us(candidates[name], calls))
    return best


# -- The floors ------------------------------------------------------------------------

_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}").fullmatch
_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}").fullmatch
# log_context's floor: one context variable holding the ids a log line needs (request id,
# trace id, span id; bench/least_app.py's dependency spans take their parent from it).
floor_ids: ContextVar[tuple[str | None, int, int] | None] = ContextVar("floor_ids", default=None)
_last_second: tuple[int, str] = (-1, "")
SpanRecord = tuple[int, int, int | None, str, int, int, dict[str, Any], int]
STATUS_ERROR = 2  # OTLP's STATUS_CODE_ERROR


def timestamp(now: float) -> str:
    """RFC 3339 with milliseconds, the whole second formatted once per second."""
    global _last_second
    second = int(now)
    if second != _last_second[0]:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{int(now * 1000) % 1000:03d}Z"


class FloorLayer:
    """A pure-ASGI layer doing the chosen jobs the cheapest defensible way, nothing else
    (no slow-request line, no 500 answer for a crash, no fallback):
    - request_id: the same validity rule on an incoming X-Request-ID, else
      random.getrandbits(128) as hex (as ours, and as the SDK makes trace ids); the header
      tuples appended to a copy of the response's list
      (the list is the response's own: not changed in place);
    - span: ids from random.getrandbits (the SDK's id generator does the same), the same
      attributes, and one tuple (trace_id, span_id, parent, name, start_ns, end_ns,
      attributes, status) appended to a bounded deque, what a batch exporter would take;
    - log_context: one context variable set to (request id, trace id, span id) and reset;
    - access_line: the product's fields in its order, an f-string with the free-text
      fields escaped by json's C escaper (ASCII out: no line break can get through;
      2.7 times as fast as the C encoder on a dict here), one os.write;
    - metrics: an add into per-(method, route, status) bucket counters (index by bisect)
      and a per-method active count, plain ints in this process, flushed elsewhere
      (a scrape or a timer would write them out)."""

    def __init__(
        self,
        app: ASGIApp,
        jobs: frozenset[str],
        log_fd: int,
        buckets: Sequence[float],
        known_methods: frozenset[str],
        spans: deque[SpanRecord],
    ) -> None:
        self.app = app
        self.echo_id = "request_id" in jobs
        self.traced = "span" in jobs
        self.log_context = "log_context" in jobs
        self.access_line = "access_line" in jobs
        self.metrics = "metrics" in jobs
        self.needs_id = self.echo_id or self.log_context or self.access_line
        self.reads_headers = self.needs_id or self.traced
        self.timed = self.access_line or self.metrics
        self.wraps_send = self.echo_id or self.traced or self.timed
        self.log_fd = log_fd
        self.version_header = (b"x-app-version", APP_VERSION.encode())
        self.buckets = tuple(buckets)
        self.known_methods = known_methods
        self.active = dict.fromkeys([*known_methods, "_OTHER"], 0)
        self.histograms: dict[tuple[str, str, int], list[float]] = {}
        self.spans = spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        incoming = traceparent = agent = None
        if self.reads_headers:
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    incoming = value
                elif name == b"traceparent":
                    traceparent = value
                elif name == b"user-agent":
                    agent = value
        request_id = None
        if self.needs_id:
            if incoming is not None and _VALID_ID(incoming):
                request_id = incoming.decode("ascii")
            else:
                request_id = random.getrandbits(128).to_bytes(16, "big").hex()
        probe = path.startswith(PROBE_PREFIX)
        trace_id = span_id = 0
        parent_id: int | None = None
        attributes: dict[str, Any] | None = None
        start_ns = 0
        if self.traced and not probe:
            parent = _TRACEPARENT(traceparent) if traceparent is not None else None
            if parent is not None:
                trace_id, parent_id = int(parent[1], 16), int(parent[2], 16)
            else:
                trace_id = random.getrandbits(128) or 1
            span_id = random.getrandbits(64) or 1
            attributes = {
                "http.request.method": method,
                "url.path": path,
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
            }
            client = scope.get("client")
            if client:
                attributes["client.address"] = client[0]
            if agent is not None:
                attributes["user_agent.original"] = agent.decode("latin-1")
            start_ns = time.time_ns()
        token = floor_ids.set((request_id, trace_id, span_id)) if self.log_context else None
        label = ""
        if self.metrics:
            label = method if method in self.known_methods else "_OTHER"
            self.active[label] += 1
        status = 500
        inner_send = send
        if self.wraps_send:
            extra = (
                [(b"x-request-id", request_id.encode()), self.version_header]
                if self.echo_id and request_id is not None
                else None
            )

            async def send_floor(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if extra is not None:
                        message["headers"] = [*message.get("headers", ()), *extra]
                await send(message)

            inner_send = send_floor
        started = time.perf_counter() if self.timed else 0.0
        try:
            await self.app(scope, receive, inner_send)
        finally:
            seconds = time.perf_counter() - started if self.timed else 0.0
            route: str = getattr(scope.get("route"), "path", "")
            if self.metrics:
                self.active[label] -= 1
                key = (label, route, status)
                counts = self.histograms.get(key)
                if counts is None:  # buckets, then the sum
                    counts = self.histograms[key] = [0.0] * (len(self.buckets) + 2)
                counts[bisect.bisect_left(self.buckets, seconds)] += 1
                counts[-1] += seconds
            if attributes is not None:
                attributes["http.response.status_code"] = status
                if route:
                    attributes["http.route"] = route
                self.spans.append(
                    (
                        trace_id,
                        span_id,
                        parent_id,
                        f"{method} {route}" if route else method,
                        start_ns,
                        time.time_ns(),
                        attributes,
                        STATUS_ERROR if status >= 500 else 0,
                    )
                )
            if self.access_line and not (probe and status < 500):  # probes: debug, off
                ids = (trace_id, span_id) if span_id else None
                self.write_line(scope, method, path, status, seconds, request_id, agent, ids)
            if token is not None:
                floor_ids.reset(token)

    def write_line(
        self,
        scope: Scope,
        method: str,
        path: str,
        status: int,
        seconds: float,
        request_id: str | None,
        agent: bytes | None,
        span_ids: tuple[int, int] | None,
    ) -> None:
        ids = f'"request_id":"{request_id}",' if request_id is not None else '"request_id":null,'
        if span_ids is not None:  # the request's span: its ids, as the product's line has
            ids = f'{ids}"trace_id":"{span_ids[0]:032x}","span_id":"{span_ids[1]:016x}",'
        client = scope.get("client")
        user_agent = agent.decode("latin-1")[:512] if agent is not None else ""
        line = (
            f'{{"timestamp":"{timestamp(time.time())}",'
            f'"level":"{"error" if status >= 500 else "info"}",'
            f'"message":"request_completed","service":"{SERVICE}",{ids}'
            f'"method":{encode_basestring_ascii(method)},"path":{encode_basestring_ascii(path)},'
            f'"status_code":{status},"duration_ms":{round(seconds * 1000, 2)},'
            f'"client_ip":{encode_basestring_ascii(client[0]) if client else "null"},'
            f'"user_agent":{encode_basestring_ascii(user_agent)}}}\n'
        )
        os.write(self.log_fd, line.encode())


# -- The export floor: the OTLP message from span tuples --------------------------------

_IDS = struct.Struct(">2sQQ2sQ")  # trace id (two halves) and span id, with their tags
_PARENT = struct.Struct(">2sQ")
_TIMES = struct.Struct("<BQBQ")  # start and end, fixed64, with their tags
SERVER_KIND = b"\x30\x02"  # SPAN_KIND_SERVER
CLIENT_KIND = b"\x30\x03"  # SPAN_KIND_CLIENT
_STATUS = {0: b"\x7a\x00", STATUS_ERROR: b"\x7a\x02\x18\x02"}
_SPAN_FLAGS = b"\x85\x01\x00\x01\x00\x00"  # fixed32 0x100: the parent is known not remote
_U64 = (1 << 64) - 1


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_prefixed(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def key_value(key: str, value: object) -> bytes:
    """A KeyValue's body; server spans have string and integer values only."""
    if isinstance(value, str):
        any_value = length_prefixed(b"\x0a", value.encode())
    elif isinstance(value, int) and not isinstance(value, bool):
        any_value = b"\x18" + varint(value & _U64)
    else:
        raise TypeError(f"the floor encodes str and int values only, not {type(value)}")
    return length_prefixed(b"\x0a", key.encode()) + length_prefixed(b"\x12", any_value)


class FloorEncoder:
    """ExportTraceServiceRequest for one resource and one scope, from span tuples: the
    resource and scope encoded once, each (key, value) attribute once (cached), each span
    a struct.pack for its ids and times and one bytes.join."""

    def __init__(self, resource_attributes: dict[str, Any], scope_name: str) -> None:
        pairs = b"".join(
            length_prefixed(b"\x0a", key_value(k, v)) for k, v in resource_attributes.items()
        )
        self.resource = length_prefixed(b"\x0a", pairs)
        name = length_prefixed(b"\x0a", scope_name.encode())
        self.scope = length_prefixed(b"\x0a", name)
        self.attributes: dict[tuple[str, Any], bytes] = {}

    def encode(self, spans: Sequence[SpanRecord], kind: bytes = SERVER_KIND) -> bytes:
        """The request for `spans`, all of one kind (server spans unless told)."""
        cache = self.attributes
        encoded = []
        for trace_id, span_id, parent, name, start, end, attributes, status in spans:
            parts = [_IDS.pack(b"\x0a\x10", trace_id >> 64, trace_id & _U64, b"\x12\x08", span_id)]
            if parent is not None:
                parts.append(_PARENT.pack(b"\x22\x08", parent))
            parts.append(length_prefixed(b"\x2a", name.encode()))
            parts.append(kind)
            parts.append(_TIMES.pack(0x39, start, 0x41, end))
            for item in attributes.items():
                pair = cache.get(item)
                if pair is None:
                    pair = cache[item] = length_prefixed(b"\x4a", key_value(*item))
                parts.append(pair)
            parts.append(_STATUS[status])
            parts.append(_SPAN_FLAGS)
            encoded.append(length_prefixed(b"\x12", b"".join(parts)))
        scope_spans = length_prefixed(b"\x12", self.scope + b"".join(encoded))
        return length_prefixed(b"\x0a", self.resource + scope_spans)


# -- The measurement ---------------------------------------------------------------------


def prepare(tmp: Path) -> int:
    """This process as a Gunicorn worker of the product has it: metrics in multiprocess
    mode (the variable is read when prometheus_client is first imported, so it is set
    before any service module comes in), no span export, the product's logging with its
    line handler writing to a file. Returns that file's descriptor."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR")
    (tmp / "metrics").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics")
    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE)
    from service.telemetry.logs import JsonLineHandler, configure_logging
    from service.telemetry.tracing import setup_tracing

    configure_logging(SERVICE, "info")
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, JsonLineHandler)]
    handler.fd = open_log(tmp / "ours.log")
    setup_tracing(SERVICE, True, APP_VERSION)
    return handler.fd


def open_log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)


def captured_request(app: ASGIApp) -> list[tuple[bytes, bytes]]:
    """The response headers `app` sends for one request."""
    headers: list[tuple[bytes, bytes]] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers.extend(message["headers"])

    request(app, capture)
    return headers


def last_line(fd: int, path: Path, run: Callable[[], object]) -> dict[str, Any] | None:
    """The line one request writes (None: none)."""
    os.ftruncate(fd, 0)
    run()
    text = path.read_text().strip()
    return json.loads(text.splitlines()[-1]) if text else None


def measure(sizes: Sizes) -> dict[str, Any]:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory(prefix="bench-floors-") as name:
        tmp = Path(name)
        ours_fd = prepare(tmp)
        floor_fd = open_log(tmp / "floor.log")
        try:
            return measure_prepared(sizes, tmp, ours_fd, floor_fd)
        finally:
            os.close(floor_fd)


def measure_prepared(sizes: Sizes, tmp: Path, ours_fd: int, floor_fd: int) -> dict[str, Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from service.telemetry.metrics import DURATION_BUCKETS, KNOWN_METHODS, AppMetrics, BuildInfo
    from service.telemetry.observability import JOBS, SCOPE_NAME, ObservabilityMiddleware
    from service.telemetry.otlp_encoding import encode_spans

    if frozenset(JOB_NAMES) != JOBS:
        raise RuntimeError(f"the middleware's jobs changed: {sorted(JOBS)}")
    metrics = AppMetrics(BuildInfo(SERVICE, APP_VERSION, "bench"))
    floor_spans: deque[SpanRecord] = deque(maxlen=2048)

    def ours(jobs: frozenset[str]) -> ASGIApp:
        return ObservabilityMiddleware(
            trivial_app, slow_request_ms=500, metrics=metrics, app_version=APP_VERSION, jobs=jobs
        )

    def floor(jobs: frozenset[str]) -> ASGIApp:
        return FloorLayer(trivial_app, jobs, floor_fd, DURATION_BUCKETS, KNOWN_METHODS, floor_spans)

    def between() -> None:  # keep the log files small; outside the timed batches
        os.ftruncate(ours_fd, 0)
        os.ftruncate(floor_fd, 0)

    rows: dict[str, Any] = {}
    baselines = []
    checks: dict[str, Any] = {}
    for row, jobs in ROWS:
        apps = {"none": trivial_app, "ours": ours(jobs), "floor": floor(jobs)}
        best = best_of(
            {name: partial(request, app) for name, app in apps.items()},
            sizes.calls,
            sizes.repeats,
            between,
        )
        baselines.append(best["none"])
        rows[row] = figures(best["ours"] - best["none"], best["floor"] - best["none"])
        ours_headers = sorted(k for k, _ in captured_request(apps["ours"]))
        floor_headers = sorted(k for k, _ in captured_request(apps["floor"]))
        if ours_headers != floor_headers:
            raise RuntimeError(f"{row}: response headers {floor_headers} != ours {ours_headers}")
        if "access_line" in jobs:
            ours_line = last_line(ours_fd, tmp / "ours.log", partial(request, apps["ours"]))
            floor_line = last_line(floor_fd, tmp / "floor.log", partial(request, apps["floor"]))
            if ours_line is None or floor_line is None or list(ours_line) != list(floor_line):
                raise RuntimeError(f"{row}: the floor's line {floor_line} is not ours {ours_line}")
            checks[f"{row}_line_fields"] = list(ours_line)
    # Export: spans made by the middleware (captured with a processor added only now).
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    captured = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(captured))
    traced = ours(frozenset({"span"}))
    for index in range(sizes.spans):
        request(traced, path=("/api/ping", "/api/items/1")[index % 2])
    spans: Sequence[ReadableSpan] = captured.get_finished_spans()
    records = [span_record(span) for span in spans]
    encoder = FloorEncoder(dict(spans[0].resource.attributes), SCOPE_NAME)
    ours_batch, floor_batch = encode_spans(spans), encoder.encode(records)
    checks["export_same_message"] = same_otlp_message(ours_batch, floor_batch)
    if not checks["export_same_message"]:
        raise RuntimeError("the floor's OTLP batch does not decode to ours")
    best = best_of(
        {"ours": lambda: encode_spans(spans), "floor": lambda: encoder.encode(records)},
        max(1, sizes.calls // 500),
        sizes.repeats,
        lambda: None,
    )
    rows[EXPORT_ROW] = figures(best["ours"] / len(spans), best["floor"] / len(spans))
    return {
        "calls_per_batch": sizes.calls,
        "repeats": sizes.repeats,
        "spans_per_export_batch": len(spans),
        "trivial_app_us": round(min(baselines), 3),
        "jobs": rows,
        "checks": checks,
    }


def figures(ours_us: float, floor_us: float) -> dict[str, float | None]:
    return {
        "ours_us": round(ours_us, 3),
        "floor_us": round(floor_us, 3),
        # None when the floor is within the timer's noise of nothing.
        "ours_over_floor": round(ours_us / floor_us, 2) if floor_us > 0.01 else None,
    }


def span_record(span: Any) -> SpanRecord:
    """A finished span as the floor's tuple."""
    context = span.get_span_context()
    return (
        context.trace_id,
        context.span_id,
        span.parent.span_id if span.parent else None,
        span.name,
        span.start_time,
        span.end_time,
        dict(span.attributes),
        span.status.status_code.value,
    )


def same_otlp_message(ours: bytes, floor: bytes) -> bool:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    return bool(
        ExportTraceServiceRequest.FromString(ours) == ExportTraceServiceRequest.FromString(floor)
    )


# -- Running it from make bench ---------------------------------------------------------


def run_floors(smoke: bool, timeout_s: float = 600) -> dict[str, Any]:
    """Measure in a fresh process (see the module's docstring); its JSON result."""
    command = [sys.executable, "-m", "bench.floors", *(["--smoke"] if smoke else [])]
    root = Path(__file__).resolve().parent.parent
    completed = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if completed.returncode != 0:
        raise FloorError(f"python -m bench.floors failed: {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def table(floors: dict[str, Any]) -> str:
    def figure(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    rows = [
        f"{'job (one process, CPU us)':<27}{'ours us':>9}{'floor us':>10}{'ours/floor':>12}",
    ]
    for name, entry in floors["jobs"].items():
        label = f"{name} (per span)" if name == EXPORT_ROW else name
        rows.append(
            f"{label:<27}{entry['ours_us']:>9.2f}{entry['floor_us']:>10.2f}"
            f"{figure(entry['ours_over_floor']):>12}"
        )
    rows.append(
        f"(per request over the trivial app's {floors['trivial_app_us']:.2f} us; best of "
        f"{floors['repeats']} batches of {floors['calls_per_batch']:,})"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floors",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="short batches (CI)")
    parser.add_argument("--table", action="store_true", help="print the table too")
    args = parser.parse_args(argv)
    result = measure(SMOKE if args.smoke else FULL)
    if args.table:
        print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
