# Usage: .venv/bin/python -m bench [--rounds N] [--duration-s S] [--smoke] [--out DIR]  (make bench)
"""The benchmark: what observability costs, job by job, on the real Gunicorn command.

The variants of the same app run at once against one PostgreSQL, one Redis and one local
OTLP/HTTP receiver per variant. By default (issue 28), bare, each of the observability
layer's jobs alone, and all of them:
  bare   OBSERVABILITY=off: no tracing, no access log, no metrics
  job-request-id, job-span, job-log-context, job-access-line, job-metrics
         the product (bench/component_app.py) with ObservabilityMiddleware doing that one
         job only: the X-Request-ID kept or made and echoed; the server span, made and
         ended, never exported (OTEL_TRACES_EXPORTER=none); the request id and user
         context variables (no span to make current); the JSON access line; the
         duration histogram and active-requests gauge (METRICS_ENABLED=true here only:
         everywhere else false, so nothing else records metrics). No dependency spans
         (OTEL_INSTRUMENT_DEPENDENCIES=false)
  job-span-export  job-span exported: BatchSpanProcessor and our OTLP/HTTP exporter to
         its receiver (the export's cost: this minus job-span)
  job-span-context  span and log_context: the span current while the app runs, no export
  job-span-context-deps  job-span-context with the dependency spans (a CLIENT span per
         SQL statement and Redis command; /api/items/{id} only, where a cache hit makes
         one Redis GET span per request; their cost: this minus job-span-context)
  full-no-export  the product's default with OTEL_TRACES_EXPORTER=none: every job, spans
         made, never exported
  full   the product's default: a server span per request at 100% sampling, exported
         through a BatchSpanProcessor and the OTLP/HTTP exporter; the JSON access log;
         Prometheus metrics; dependency spans
  least  full's observable work done the least way, with none of our observability code,
         the SDK or prometheus_client (bench/least_app.py): bare with bench/floors.py's
         FloorLayer (the five jobs; spans as tuples, metrics as ints), the Redis command
         spans as tuples, and a thread per worker posting them 512 at a time with
         FloorEncoder and http.client: the reference for issue 28's limit on the server
The per-component table gives each job's CPU per request above bare (median of the
per-round differences), and the three ratios the issue's goals are about: bare's CPU per
request over full-no-export's on /api/ping (goal >= 0.75), over full's on /api/ping
(>= 0.67) and on /api/items/{id} (>= 0.80), each the median of per-round ratios, with
least's ratio on the same route beside it (the limit a goal sits under). Next to
it, a floor per job measured in one process (bench/floors.py): ours against the least a
Python layer can spend on the same job.
On request (--variants), the earlier references:
  floor  full's span, processor, exporter and metrics with the least layer around them
         (bench/floor_app.py): the same app with one minimal pure-ASGI layer (request id,
         one server span with the same attributes exported the same way, the same metrics
         updates, one JSON access line written with one write(2)) and the same dependency
         spans; it measures the layer, not the work (issue 18's goal was full >= 0.95 x
         floor; least is the reference for the work)
  stock  bare plus the contrib opentelemetry-instrumentation-fastapi (bench/stock_app.py),
         exporting the same way; no access log
  stock-lean  stock with its leanest option, exclude_spans=["receive", "send"] (no
         internal span per ASGI message: one span per request, like ours)
And full minus one part:
  full-no-access-log  full with LOG_LEVEL=warning: no access line, all else as full
  full-no-metrics     full with METRICS_ENABLED=false: nothing recorded, no listener
  full-split          full with the two middlewares it had before (TracingMiddleware
                      outside AccessLogMiddleware) instead of its one layer
  full-before         full as it was before issue 18: the two middlewares, and
                      dependency spans made by the SDK's Span (bench/ab_apps.py)
And for the dependency spans (the items route reads Redis):
  full-no-deps        full with OTEL_INSTRUMENT_DEPENDENCIES=false: no dependency spans
  full-sdk-deps       full with our dependency spans made by the SDK's Span (as before
                      they took the lean span; bench/ab_apps.py)
  full-contrib-deps   full with the contrib SQLAlchemy and Redis instrumentations in
                      place of ours (bench/contrib_deps_app.py)
Each round loads every route with every variant in turn (the order rotates from round
to round) with wrk for the same time; figures are medians over the rounds, and ratios and
differences are taken within a round, so slow phases of a shared machine hit both sides.
Every variant is checked: spans received or not, access lines present or not (with or
without trace ids), X-Request-ID echoed or not, request metrics served or not, the jobs a
component variant logs it runs, and no failed request.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench import floors
from bench.lifecycle import Lifecycle, LifecycleError, measure_lifecycle, wait_ready
from bench.load import LoadError, LoadResult, children, peak_rss_mib, run_wrk, wrk_binary
from bench.receiver import CountingReceiver
from bench.stats import median_interval
from tools.testbed.servers import GUNICORN_COMMAND, PostgresServer, RedisServer, ServiceProcess
from tools.testbed.support import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
ITEMS_ROUTE = "/api/items/{id}"
# Each job of ObservabilityMiddleware alone (bench/component_app.py), and the mixes whose
# differences give the export's and the dependency spans' costs: variant -> its jobs.
COMPONENT_VARIANTS = {
    "job-request-id": ("request_id",),
    "job-span": ("span",),
    "job-log-context": ("log_context",),
    "job-access-line": ("access_line",),
    "job-metrics": ("metrics",),
    "job-span-export": ("span",),
    "job-span-context": ("span", "log_context"),
    "job-span-context-deps": ("span", "log_context"),
}
# "least" last: the reference for the goals (the least the work can cost, on the server).
VARIANTS = ("bare", *COMPONENT_VARIANTS, "full-no-export", "full", "least")
# The per-component table: (key, what, variant, over): the variant's CPU per request
# above the other's, median of the per-round differences.
COMPONENTS = (
    ("request_id", "request_id", "job-request-id", "bare"),
    ("span", "span (no export)", "job-span", "bare"),
    ("log_context", "log_context (no span)", "job-log-context", "bare"),
    ("access_line", "access_line", "job-access-line", "bare"),
    ("metrics", "metrics", "job-metrics", "bare"),
    ("span_and_log_context", "span + log_context", "job-span-context", "bare"),
    ("log_context_with_span", "log_context, span current", "job-span-context", "job-span"),
    ("export", "export", "job-span-export", "job-span"),
    ("dependency_spans", "dependency spans", "job-span-context-deps", "job-span-context"),
    ("all_no_export", "all, no export", "full-no-export", "bare"),
    ("all", "all (full)", "full", "bare"),
)
# Issue 28's goals: bare's CPU per request over the variant's, median of per-round ratios.
GOALS = (
    ("full-no-export", "/api/ping", 0.75),
    ("full", "/api/ping", 0.67),
    ("full", ITEMS_ROUTE, 0.80),
)
# Where full's cost goes (`make bench BENCH_ARGS="--variants bare,full,full-no-export,
# full-no-access-log"`): full minus one part each, side by side with the others.
BREAKDOWN_VARIANTS = ("full-no-export", "full-no-access-log", "full-no-metrics")
# Full with its speed changes undone (bench/ab_apps.py): what each bought, in one run.
AB_APPS = {
    "full-split": "bench.ab_apps:build('split', 'lean')",
    "full-sdk-deps": "bench.ab_apps:build('one', 'sdk')",
    "full-before": "bench.ab_apps:build('split', 'sdk')",
}
# Dependency spans three ways, on the items route (`make bench BENCH_ARGS="--variants
# bare,floor,full,full-no-deps,full-contrib-deps --routes /api/items/{id}"`).
DEPENDENCY_VARIANTS = ("full-no-deps", "full-sdk-deps", "full-contrib-deps")
AB_VARIANTS = ("full-split", "full-sdk-deps", "full-before")
# Full with one of issue 28's cuts undone (bench/undo_apps.py): what each bought, in one run
# (`make bench BENCH_ARGS="--variants bare,full,full-undo-gc,... --before COMMIT"`).
UNDO_APPS = {
    f"full-undo-{cut}": f"bench.undo_apps:build({cut!r})"
    for cut in ("gc", "metrics", "lines", "encoder")
}
# Every variant but the default ones (--variants).
ON_REQUEST = tuple(
    name
    for name in dict.fromkeys(
        (
            "floor",
            "stock",
            "stock-lean",
            *BREAKDOWN_VARIANTS,
            *AB_VARIANTS,
            *UNDO_APPS,
            *DEPENDENCY_VARIANTS,
        )
    )
    if name not in VARIANTS
)
# The ratios printed beside each variant's figures.
REFERENCES = ("bare", "floor")
# --before's variants: the commit's bare, full-no-export and full, with this prefix.
BEFORE = "before-"
BEFORE_BARE = f"{BEFORE}bare"
# Start-up and shutdown are measured for the product's two modes only.
LIFECYCLE_VARIANTS = ("bare", "full")
ROUTES = ("/api/ping", ITEMS_ROUTE)
WORKERS = 2
STOCK_MODULE = "opentelemetry.instrumentation.fastapi"
CONTRIB_DEPS_MODULES = (
    "opentelemetry.instrumentation.sqlalchemy",
    "opentelemetry.instrumentation.redis",
)
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "gunicorn",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation-fastapi",
    "opentelemetry-instrumentation-sqlalchemy",
    "opentelemetry-instrumentation-redis",
)


@dataclass
class Options:
    # Many short rounds: on a shared machine the median of per-round ratios settles
    # faster with more rounds than with longer ones (same total time as 5 x 6 s). With the
    # default variants (21 wrk runs a round) 10 x 3 s keeps `make bench` near 13 minutes
    # on 2 cores; a component's few microseconds need the 3 s (CPU is read in ticks).
    rounds: int = 10
    duration_s: float = 3.0
    warmup_s: float = 2.0
    connections: int = 32
    lifecycle_runs: int = 3
    formatter_lines: int = 100_000
    variants: tuple[str, ...] = VARIANTS
    routes: tuple[str, ...] = ROUTES
    out: Path = RESULTS_DIR
    smoke: bool = False
    # A commit whose full and full-no-export run side by side with this tree's (as
    # before-full, before-full-no-export): what the changes since bought, in one run.
    before: str | None = None


@dataclass
class Variant:
    name: str
    app: str
    observability: str
    receiver: CountingReceiver
    extra_env: dict[str, str] = field(default_factory=dict)
    exports: bool = True  # spans must reach its receiver
    access_log: bool = False  # its log must hold an access line per request
    traced_lines: bool = True  # its access lines carry a trace_id
    echoes_id: bool | None = None  # X-Request-ID on its responses (None: as OBSERVABILITY)
    jobs: tuple[str, ...] | None = None  # a component variant's jobs, as it must log them
    traced_redis: bool = False  # a component variant's Redis commands make spans
    only_route: str | None = None  # loaded on this route only
    cwd: Path | None = None  # a tree of another commit (--before), else this one
    service: ServiceProcess | None = None
    requests: int = 0  # traced requests sent to it (every wrk run, warm-ups included)
    runs: dict[str, list[LoadResult]] = field(default_factory=dict)
    lifecycles: list[Lifecycle] = field(default_factory=list)

    def env(self, database_url: str, redis_url: str) -> dict[str, str]:
        return {
            "WEB_CONCURRENCY": str(WORKERS),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "OBSERVABILITY": self.observability,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.endpoint,
            "OTEL_SERVICE_NAME": f"bench-{self.name}",
            # In its build_info: whose metrics listener answered (serves_request_metrics).
            "APP_REVISION": self.revision,
            "LOG_LEVEL": "info",
            **self.extra_env,
        }

    @property
    def revision(self) -> str:
        return f"bench-{self.name}"

    @property
    def echoes_request_id(self) -> bool:
        return self.echoes_id if self.echoes_id is not None else self.observability == "full"

    @property
    def serves_metrics(self) -> bool:
        """The request metrics are on (the master's listener serves them)."""
        enabled = self.extra_env.get("METRICS_ENABLED", "true") != "false"
        return self.observability == "full" and enabled

    def loads(self, route: str) -> bool:
        return self.only_route is None or self.only_route == route

    def new_service(self, database_url: str, redis_url: str, tmp_dir: Path) -> ServiceProcess:
        service = ServiceProcess(env=self.env(database_url, redis_url), tmp_dir=tmp_dir)
        service.command = [*GUNICORN_COMMAND[:-1], self.app]
        if self.cwd is not None:
            service.cwd = self.cwd
        return service


def before_variants(commit: str, tmp: Path) -> list[Variant]:
    """bare, full-no-export and full as they were at `commit` (its service/ from git, run
    by the same virtual environment), named before-bare, before-full-no-export and
    before-full. before-bare is what the other two are also measured against: a change
    that makes bare itself cheaper moves every ratio to bare."""
    tree = tmp / "before"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit, "service"], cwd=REPO_ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    variants = []
    for name in ("bare", "full-no-export", "full"):
        variant = make_variant(name)
        variant.name = f"{BEFORE}{name}"
        variant.cwd = tree
        variants.append(variant)
    return variants


def component_variant(name: str) -> Variant:
    """One of COMPONENT_VARIANTS: only its jobs, no export but job-span-export's, metrics
    for job-metrics only, dependency spans for job-span-context-deps only."""
    jobs = COMPONENT_VARIANTS[name]
    exports = name == "job-span-export"
    deps = name == "job-span-context-deps"
    env = {
        "METRICS_ENABLED": str("metrics" in jobs).lower(),
        "OTEL_INSTRUMENT_DEPENDENCIES": str(deps).lower(),
        **({} if exports else {"OTEL_TRACES_EXPORTER": "none"}),
    }
    app = f"bench.component_app:build({', '.join(repr(job) for job in jobs)})"
    return Variant(
        name,
        app,
        "full",
        CountingReceiver(),
        env,
        exports=exports,
        access_log="access_line" in jobs,
        traced_lines=False,  # job-access-line's lines: no span is current, no trace_id
        echoes_id="request_id" in jobs,
        jobs=tuple(sorted(jobs)),
        traced_redis=deps,
        only_route=ITEMS_ROUTE if deps else None,
    )


def make_variant(name: str) -> Variant:
    if name == "bare":
        return Variant(name, "service.main:app", "off", CountingReceiver(), exports=False)
    if name in COMPONENT_VARIANTS:
        return component_variant(name)
    if name == "full":
        return Variant(name, "service.main:app", "full", CountingReceiver(), access_log=True)
    if name == "floor":
        return Variant(name, "bench.floor_app:app", "full", CountingReceiver(), access_log=True)
    if name == "least":  # OBSERVABILITY=off: its own layer does the work, no metrics served
        app = "bench.least_app:least_app()"
        return Variant(name, app, "off", CountingReceiver(), access_log=True, echoes_id=True)
    if name in AB_APPS:  # full with one or both of its speed changes undone
        return Variant(name, AB_APPS[name], "full", CountingReceiver(), access_log=True)
    if name in UNDO_APPS:  # full with one of issue 28's cuts undone
        return Variant(name, UNDO_APPS[name], "full", CountingReceiver(), access_log=True)
    if name == "full-no-deps":
        env = {"OTEL_INSTRUMENT_DEPENDENCIES": "false"}
        return Variant(name, "service.main:app", "full", CountingReceiver(), env, access_log=True)
    if name == "full-contrib-deps":  # ours off, the contrib instrumentations on
        env = {"OTEL_INSTRUMENT_DEPENDENCIES": "false"}
        app = "bench.contrib_deps_app:app"
        return Variant(name, app, "full", CountingReceiver(), env, access_log=True)
    if name == "full-no-export":  # spans made and logged, never exported
        env = {"OTEL_TRACES_EXPORTER": "none"}
        return Variant(
            name,
            "service.main:app",
            "full",
            CountingReceiver(),
            env,
            exports=False,
            access_log=True,
        )
    if name == "full-no-access-log":  # info level off: no access line, the rest as full
        env = {"LOG_LEVEL": "warning"}
        return Variant(name, "service.main:app", "full", CountingReceiver(), env)
    if name == "full-no-metrics":  # what the Prometheus metrics cost per request
        env = {"METRICS_ENABLED": "false"}
        return Variant(name, "service.main:app", "full", CountingReceiver(), env, access_log=True)
    if name == "stock":
        return Variant(name, "bench.stock_app:app", "off", CountingReceiver())
    if name == "stock-lean":
        env = {"BENCH_STOCK_EXCLUDE_SPANS": "receive,send"}
        return Variant(name, "bench.stock_app:app", "off", CountingReceiver(), env)
    raise ValueError(f"unknown variant {name!r}")


def log(message: str) -> None:
    print(message, flush=True)


def rotated(items: Sequence[str], by: int) -> list[str]:
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def check_prerequisites(options: Options) -> list[str]:
    problems = []
    if wrk_binary() is None:
        problems.append("wrk is not installed (apt-get install wrk)")
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        problems.append("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    if shutil.which("redis-server") is None:
        problems.append("redis-server is not installed (apt-get install redis-server)")
    stock = any(name.startswith("stock") for name in options.variants)
    if stock and importlib.util.find_spec(STOCK_MODULE) is None:
        problems.append(
            "the stock variant needs bench/requirements.txt installed (make bench does it)"
        )
    contrib = "full-contrib-deps" in options.variants
    if contrib and any(importlib.util.find_spec(m) is None for m in CONTRIB_DEPS_MODULES):
        problems.append(
            "full-contrib-deps needs bench/requirements.txt installed (make bench does it)"
        )
    return problems


@contextlib.contextmanager
def backing_servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    postgres = PostgresServer()
    redis = RedisServer()
    try:
        postgres.start()
        postgres.migrate()
        redis.start()
        yield postgres, redis
    finally:
        redis.stop()
        postgres.destroy()


def measure_lifecycles(
    variants: list[Variant], options: Options, database_url: str, redis_url: str, tmp: Path
) -> None:
    names = [v.name for v in variants if v.name in LIFECYCLE_VARIANTS]
    for run in range(options.lifecycle_runs):
        for name in rotated(names, run):
            variant = next(v for v in variants if v.name == name)
            result = measure_lifecycle(variant.new_service(database_url, redis_url, tmp))
            variant.lifecycles.append(result)
            log(
                f"  lifecycle {name:5} run {run + 1}: ready in {result.start_to_ready_s:.2f} s, "
                f"SIGTERM to exit {result.sigterm_to_exit_s:.2f} s (exit code {result.exit_code})"
            )


def start_services(variants: list[Variant], database_url: str, redis_url: str, tmp: Path) -> None:
    """Start every variant at once (start-up is measured separately), wait until ready."""
    starts = {}
    for variant in variants:
        variant.service = variant.new_service(database_url, redis_url, tmp)
        starts[variant.name] = time.monotonic()
        variant.service.start(wait=None)
    for variant in variants:
        assert variant.service is not None
        wait_ready(variant.service, starts[variant.name])


def stop_services(variants: list[Variant]) -> None:
    """SIGTERM to all (each flushes its spans while it shuts down), then wait for all."""
    for variant in variants:
        if variant.service and variant.service.process and variant.service.process.poll() is None:
            variant.service.signal(signal.SIGTERM)
    for variant in variants:
        if variant.service is not None:
            variant.service.stop()


def seed_item(service: ServiceProcess) -> int:
    response = httpx.post(f"{service.url}/api/items", json={"name": "bench"}, timeout=10)
    response.raise_for_status()
    item_id = int(response.json()["id"])
    # The first read fills the Redis cache that every later read hits.
    httpx.get(f"{service.url}/api/items/{item_id}", timeout=10).raise_for_status()
    return item_id


def load(variant: Variant, path: str, duration_s: float, options: Options) -> LoadResult:
    assert variant.service is not None and variant.service.process is not None
    result = run_wrk(
        variant.service.url + path,
        duration_s,
        options.connections,
        server_pid=variant.service.process.pid,
    )
    variant.requests += result.requests
    return result


def run_rounds(variants: list[Variant], options: Options, paths: dict[str, str]) -> None:
    if options.warmup_s >= 1:
        for route, path in paths.items():
            for variant in variants:
                if variant.loads(route):
                    load(variant, path, options.warmup_s, options)
        log(f"  warmed up every variant on every route for {options.warmup_s:g} s")
    for round_index in range(options.rounds):
        for route, path in paths.items():
            line = []
            names = [v.name for v in variants if v.loads(route)]
            if not names:
                continue
            for name in rotated(names, round_index):
                variant = next(v for v in variants if v.name == name)
                result = load(variant, path, options.duration_s, options)
                variant.runs.setdefault(route, []).append(result)
                line.append(f"{name} {result.requests_per_s:,.0f}/s")
            log(f"  round {round_index + 1}/{options.rounds} {route}: " + ", ".join(line))


def formatter_speed(lines: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.formatter_speed", "--lines", str(lines)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def access_lines(service: ServiceProcess) -> dict[str, Any]:
    """request_completed lines in a variant's output, how many carry a trace id, and the
    fields of every 1000th line (the schema floor and full must share)."""
    total = with_trace = 0
    fields: set[str] = set()
    if service.log_path.exists():
        with service.log_path.open("rb") as output:
            for line in output:
                if b'"message":"request_completed"' in line:
                    if total % 1000 == 0:
                        fields.update(json.loads(line))
                    total += 1
                    with_trace += b'"trace_id":"' in line
    return {"request_completed": total, "with_trace_id": with_trace, "fields": sorted(fields)}


def echoes_request_id(variant: Variant) -> bool:
    """Whether a response of the variant carries X-Request-ID (one ping, counted)."""
    assert variant.service is not None
    response = httpx.get(f"{variant.service.url}/api/ping", timeout=10)
    response.raise_for_status()
    variant.requests += 1
    return "x-request-id" in response.headers


def serves_request_metrics(variant: Variant) -> bool:
    """Whether the variant's metrics listener has request durations (no listener: False).
    The answer must carry the variant's own revision: a variant with metrics off leaves
    its METRICS_PORT (a port that was free when it was picked) unbound, and another
    variant's listener may have been given the same port since."""
    assert variant.service is not None
    try:
        response = httpx.get(variant.service.metrics_url, timeout=10)
    except httpx.TransportError:
        return False
    return (
        response.status_code == 200
        and f'revision="{variant.revision}"' in response.text
        and "http_server_request_duration_seconds_count{" in response.text
    )


def component_app_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    """What each worker of a component variant logged it runs (bench/component_app.py's
    EVENT line; the module is not imported here: it builds the product's app)."""
    found = []
    if service.log_path.exists():
        with service.log_path.open("rb") as output:
            for line in output:
                if b'"message":"bench_component_app"' in line:
                    record = json.loads(line)
                    found.append({k: record.get(k) for k in ("jobs", "metrics", "traced_redis")})
    return found


def wait_for_spans(variants: list[Variant], settle_s: float = 1.0) -> None:
    """Until no receiver has counted a new span for settle_s (bounded to 30 s); the
    servers have exited by then, after flushing, so this only lets the receiver finish."""
    deadline = time.monotonic() + 30
    last = [v.receiver.counts() for v in variants]
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < settle_s:
        time.sleep(0.25)
        now = [v.receiver.counts() for v in variants]
        if now != last:
            last, quiet_since = now, time.monotonic()


def summarise(variants: list[Variant], options: Options, extra: dict[str, Any]) -> dict[str, Any]:
    by_name = {v.name: v for v in variants}
    routes: dict[str, Any] = {}
    for route in options.routes:
        summary: dict[str, Any] = {"variants": {}}
        for variant in variants:
            if route not in variant.runs:  # not loaded on this route (only_route)
                continue
            runs = variant.runs[route]
            entry: dict[str, Any] = {
                "requests_per_s": spread([r.requests_per_s for r in runs]),
                "p50_ms": spread([r.p50_ms for r in runs]),
                "p99_ms": spread([r.p99_ms for r in runs]),
                "errors": sum(r.errors for r in runs),
                "runs": [r.as_dict() for r in runs],
            }
            cpu = [r.cpu_us_per_request for r in runs if r.cpu_us_per_request is not None]
            if cpu:
                entry["cpu_us_per_request"] = spread(cpu)
            for reference in REFERENCES:
                reference_runs = (
                    by_name[reference].runs.get(route) if reference in by_name else None
                )
                if reference_runs and variant.name != reference:
                    entry.update(ratios_to(reference, runs, reference_runs))
            own_bare = by_name[BEFORE_BARE].runs.get(route) if BEFORE_BARE in by_name else None
            if own_bare and variant.name.startswith(BEFORE) and variant.name != BEFORE_BARE:
                entry.update(ratios_to("own_bare", runs, own_bare))  # the commit's own bare
            summary["variants"][variant.name] = entry
        routes[route] = summary
    per_variant: dict[str, Any] = {}
    for variant in variants:
        spans, exports = variant.receiver.counts()
        info: dict[str, Any] = {
            "app": variant.app,
            "OBSERVABILITY": variant.observability,
            "env": variant.extra_env,
            "traced_requests": variant.requests,
            "exports_spans": variant.exports,
            "spans_received": spans,
            "export_requests": exports,
            "spans_per_request": round(spans / variant.requests, 3) if variant.requests else None,
            "expected": expectations(variant),
        }
        if variant.lifecycles:
            info["start_to_ready_s"] = spread([x.start_to_ready_s for x in variant.lifecycles])
            info["sigterm_to_exit_s"] = spread([x.sigterm_to_exit_s for x in variant.lifecycles])
            info["exit_codes"] = sorted({x.exit_code for x in variant.lifecycles})
        per_variant[variant.name] = {**info, **extra.get(variant.name, {})}
    return {
        "conditions": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": git_commit(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "workers": WORKERS,
            "connections": options.connections,
            "wrk_threads": 1,
            "rounds": options.rounds,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "smoke": options.smoke,
            "packages": package_versions(),
        },
        "routes": routes,
        "variants": per_variant,
        "components": components(by_name, options.routes),
        "goals": goals(routes),
    }


def expectations(variant: Variant) -> dict[str, Any]:
    """What the run checks a variant against (problems_in)."""
    return {
        "access_lines": variant.access_log,
        "trace_ids_in_access_lines": variant.traced_lines,
        "x_request_id": variant.echoes_request_id,
        "request_metrics": variant.serves_metrics,
        "jobs": list(variant.jobs) if variant.jobs is not None else None,
        "traced_redis": variant.traced_redis,
        # job-span-export: the server span only (no dependency span: none is current).
        "spans_per_request": 1.0 if variant.name == "job-span-export" else None,
    }


def cpu_per_round(runs: list[LoadResult]) -> list[float | None]:
    return [r.cpu_us_per_request for r in runs]


def components(by_name: dict[str, Variant], routes: Sequence[str]) -> dict[str, Any]:
    """Per route, each row of COMPONENTS whose two variants ran on it: the CPU per request
    the variant adds over the other (median of the per-round differences), and the
    variant's CPU ratio to bare (bare's over its, median of the per-round ratios)."""
    found: dict[str, Any] = {}
    for route in routes:
        rows: dict[str, Any] = {}
        bare = by_name["bare"].runs.get(route) if "bare" in by_name else None
        for key, what, name, over in COMPONENTS:
            if name not in by_name or over not in by_name:
                continue
            runs, under = by_name[name].runs.get(route), by_name[over].runs.get(route)
            if not runs or not under:
                continue
            added = [
                round(a - b, 1)
                for a, b in zip(cpu_per_round(runs), cpu_per_round(under), strict=True)
                if a is not None and b is not None
            ]
            bare_cpu = cpu_per_round(bare) if bare else [None] * len(runs)
            ratios = [b / a for a, b in zip(cpu_per_round(runs), bare_cpu, strict=True) if a and b]
            rows[key] = {
                "component": what,
                "variant": name,
                "over": over,
                "added_cpu_us": round(statistics.median(added), 1) if added else None,
                "added_cpu_us_per_round": added,
                "cpu_ratio_to_bare": round(statistics.median(ratios), 3) if ratios else None,
            }
        found[route] = rows
    return found


def goals(routes: dict[str, Any]) -> list[dict[str, Any]]:
    """GOALS with their measured ratio (None when the run did not have the variant), and
    the least variant's on the same route: what the least code doing full's work (export
    included) gets."""
    found = []
    for name, route, goal in GOALS:
        entry = routes.get(route, {}).get("variants", {}).get(name, {})
        ratio = entry.get("cpu_ratio_to_bare")
        before = routes.get(route, {}).get("variants", {}).get(f"{BEFORE}{name}", {})
        least = routes.get(route, {}).get("variants", {}).get("least", {})
        found.append(
            {
                "variant": name,
                "route": route,
                "cpu_ratio_to_bare": ratio,
                # 95 % bootstrap interval of that median over the run's rounds (bench/stats.py)
                "cpu_ratio_interval": entry.get("cpu_ratio_to_bare_interval"),
                "least_cpu_ratio_to_bare": least.get("cpu_ratio_to_bare"),
                "before_cpu_ratio_to_bare": before.get("cpu_ratio_to_bare"),
                "before_cpu_ratio_to_own_bare": before.get("cpu_ratio_to_own_bare"),
                "goal": goal,
                "met": None if ratio is None else ratio >= goal,
            }
        )
    return found


def ratios_to(
    reference: str, runs: list[LoadResult], reference_runs: list[LoadResult]
) -> dict[str, Any]:
    """Medians of the per-round ratios to a reference variant: requests/s (ratio_to_<ref>)
    and CPU per request (cpu_ratio_to_<ref>, the reference's over this one's)."""
    found: dict[str, Any] = {}
    ratios = [
        r.requests_per_s / b.requests_per_s
        for r, b in zip(runs, reference_runs, strict=True)
        if b.requests_per_s
    ]
    found[f"ratio_to_{reference}"] = round(statistics.median(ratios), 3) if ratios else None
    found[f"ratio_to_{reference}_per_round"] = [round(x, 3) for x in ratios]
    cpu_ratios = [
        b.cpu_us_per_request / r.cpu_us_per_request
        for r, b in zip(runs, reference_runs, strict=True)
        if r.cpu_us_per_request and b.cpu_us_per_request
    ]
    if cpu_ratios:
        found[f"cpu_ratio_to_{reference}"] = round(statistics.median(cpu_ratios), 3)
        found[f"cpu_ratio_to_{reference}_per_round"] = [round(x, 3) for x in cpu_ratios]
        interval = median_interval(cpu_ratios)
        found[f"cpu_ratio_to_{reference}_interval"] = (
            None if interval is None else [round(x, 3) for x in interval]
        )
    return found


def git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return None
    return completed.stdout.strip() or None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def table(results: dict[str, Any]) -> str:
    rows = [
        f"{'route':<17}{'variant':<23}{'req/s':>9}{'vs bare':>9}{'vs floor':>9}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'CPU us/req':>11}{'CPU vs bare':>12}{'CPU vs floor':>13}{'errors':>7}"
    ]

    def figure(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    for route, summary in results["routes"].items():
        for name, entry in summary["variants"].items():
            cpu = entry.get("cpu_us_per_request", {}).get("median")
            rows.append(
                f"{route:<17}{name:<23}{entry['requests_per_s']['median']:>9,.0f}"
                f"{figure(entry.get('ratio_to_bare')):>9}"
                f"{figure(entry.get('ratio_to_floor')):>9}"
                f"{entry['p50_ms']['median']:>8.2f}{entry['p99_ms']['median']:>8.2f}"
                f"{(f'{cpu:.0f}' if cpu is not None else '-'):>11}"
                f"{figure(entry.get('cpu_ratio_to_bare')):>12}"
                f"{figure(entry.get('cpu_ratio_to_floor')):>13}"
                f"{entry['errors']:>7}"
            )
    rows.append("")
    rows.append(
        f"{'variant':<23}{'ready s':>9}{'SIGTERM->exit s':>17}{'peak RSS/worker MiB':>21}"
        f"{'spans/request':>15}{'access lines w/ trace_id':>26}"
    )
    for name, info in results["variants"].items():
        ready = info.get("start_to_ready_s", {}).get("median")
        exit_s = info.get("sigterm_to_exit_s", {}).get("median")
        rss = info.get("peak_rss_mib_per_worker")
        spans = info.get("spans_per_request")
        lines = info.get("access_lines")
        logged = f"{lines['with_trace_id']:,}/{lines['request_completed']:,}" if lines else "-"
        rows.append(
            f"{name:<23}{(f'{ready:.2f}' if ready is not None else '-'):>9}"
            f"{(f'{exit_s:.2f}' if exit_s is not None else '-'):>17}"
            f"{(f'{max(rss):.1f}' if rss else '-'):>21}"
            f"{(f'{spans:.3f}' if spans is not None else '-'):>15}{logged:>26}"
        )
    formatter = results.get("formatter")
    if formatter:
        rows.append("")
        rows.append(
            f"JSON formatter on one core: {formatter['formatter_lines_per_cpu_s']:,} lines/s; "
            f"whole access-log path (logger, formatter, write): "
            f"{formatter['access_log_lines_per_cpu_s']:,} lines/s"
        )
    if results.get("components"):
        rows += ["", component_table(results)]
    if results.get("floors"):
        rows += ["", floors.table(results["floors"])]
    if results.get("goals"):
        rows += ["", goals_table(results["goals"])]
    return "\n".join(rows)


def component_table(results: dict[str, Any]) -> str:
    """Per component: the CPU us per request it adds, and its variant's CPU ratio to bare."""
    routes = list(results["components"])
    head = f"{'component':<27}{'variant':<23}{'over':<18}"
    rows = [
        "CPU us/request each component adds (median of per-round differences) and its "
        "variant's CPU vs bare",
        head + "".join(f"{route:>24}" for route in routes),
        " " * len(head) + f"{'added':>14}{'vs bare':>10}" * len(routes),
    ]
    for key, what, name, over in COMPONENTS:
        cells = [results["components"][route].get(key) for route in routes]
        if not any(cells):
            continue
        line = f"{what:<27}{name:<23}{over:<18}"
        for cell in cells:
            added = cell["added_cpu_us"] if cell else None
            ratio = cell["cpu_ratio_to_bare"] if cell else None
            line += f"{(f'{added:+.1f}' if added is not None else '-'):>14}"
            line += f"{(f'{ratio:.2f}' if ratio is not None else '-'):>10}"
        rows.append(line)
    return "\n".join(rows)


def goals_table(found: list[dict[str, Any]]) -> str:
    rows = ["The three ratios: bare's CPU per request over the variant's (median per round)"]
    for goal in found:
        ratio = goal["cpu_ratio_to_bare"]
        verdict = "not run" if goal["met"] is None else "PASS" if goal["met"] else "MISS"
        rows.append(
            f"  {goal['variant'] + ' on ' + goal['route']:<34}"
            f"{(f'{ratio:.2f}' if ratio is not None else '-'):>6}"
            f"{interval_note(goal.get('cpu_ratio_interval')):<17}"
            f"goal >= {goal['goal']:.2f}   {verdict}" + least_note(goal) + before_note(goal)
        )
    rows.append("  (in brackets: the 95 % bootstrap interval of the median over the rounds)")
    return "\n".join(rows)


def interval_note(interval: Sequence[float] | None) -> str:
    """A goal ratio's interval (bench/stats.py), or nothing with too few rounds."""
    return f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "   "


def least_note(goal: dict[str, Any]) -> str:
    """The least variant's ratio on the goal's route: the limit the goal sits under."""
    least = goal.get("least_cpu_ratio_to_bare")
    return f"   (least: {least:.2f})" if least else ""


def before_note(goal: dict[str, Any]) -> str:
    """The --before commit's ratio for a goal: against this tree's bare, and against the
    commit's own bare when the run had it."""
    before = goal.get("before_cpu_ratio_to_bare")
    if not before:
        return ""
    own = goal.get("before_cpu_ratio_to_own_bare")
    return f"   (before: {before:.2f}" + (f", {own:.2f} against its own bare)" if own else ")")


def problems_in(results: dict[str, Any]) -> list[str]:
    """What makes the run invalid: failed requests, or a tracing variant exporting nothing."""
    problems = []
    for route, summary in results["routes"].items():
        for name, entry in summary["variants"].items():
            if entry["errors"]:
                problems.append(f"{name} {route}: {entry['errors']} failed requests")
    for name, info in results["variants"].items():
        if info["exports_spans"] and not info["spans_received"]:
            problems.append(f"{name}: no span reached the OTLP receiver")
        if not info["exports_spans"] and info["spans_received"]:
            problems.append(f"{name}: spans reached the OTLP receiver, which it must not export")
        expected = info["expected"]
        lines = info.get("access_lines")
        traced_lines = expected["trace_ids_in_access_lines"]
        if (
            lines is not None
            and traced_lines
            and lines["with_trace_id"] < lines["request_completed"]
        ):
            problems.append(f"{name}: access lines without a trace_id")
        if lines is not None and not traced_lines and lines["with_trace_id"]:
            problems.append(f"{name}: access lines with a trace_id, which it has no span for")
        if lines is not None and not lines["request_completed"]:
            problems.append(f"{name}: no access line in its log")
        if info.get("stray_access_lines"):
            problems.append(
                f"{name}: {info['stray_access_lines']} access lines, which it must not write"
            )
        if any(code != 0 for code in info.get("exit_codes", [])):
            problems.append(f"{name}: exit code {info['exit_codes']} after SIGTERM")
        problems += expectations_unmet(name, info)
    full = results["variants"].get("full", {}).get("access_lines")
    for reference in ("floor", "least"):
        lines = results["variants"].get(reference, {}).get("access_lines")
        if lines and full and lines["fields"] != full["fields"]:
            problems.append(
                f"{reference}'s access lines have other fields than full's: {lines['fields']} "
                f"vs {full['fields']}"
            )
    return problems


def expectations_unmet(name: str, info: dict[str, Any]) -> list[str]:
    """What a variant showed against what it must do: X-Request-ID echoed, request
    metrics served, a component variant's jobs and traced Redis commands (as each worker
    logs them), and one span per request where that is all it exports."""
    expected = info["expected"]
    problems = []
    for key, what in (("x_request_id", "X-Request-ID echoed"), ("request_metrics", "metrics")):
        if info.get(key) != expected[key]:
            problems.append(f"{name}: {what} {info.get(key)}, must be {expected[key]}")
    if expected["jobs"] is not None:
        want = {
            "jobs": expected["jobs"],
            "metrics": expected["request_metrics"],
            "traced_redis": expected["traced_redis"],
        }
        workers = info.get("component_app", [])
        if len(workers) != WORKERS or any(worker != want for worker in workers):
            problems.append(f"{name}: its workers run {workers}, must run {want} each")
    spans, want_spans = info["spans_per_request"], expected["spans_per_request"]
    if want_spans is not None and (spans is None or abs(spans - want_spans) > 0.05):
        problems.append(f"{name}: {spans} spans per request, must be {want_spans}")
    return problems


def run(options: Options) -> dict[str, Any]:
    variants = [make_variant(name) for name in options.variants]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        if options.before:
            variants += before_variants(options.before, tmp)
        extra: dict[str, dict[str, Any]] = {v.name: {} for v in variants}
        for variant in variants:
            stack.enter_context(variant.receiver)
        log("starting PostgreSQL and Redis")
        postgres, redis = stack.enter_context(backing_servers())
        log(f"start-up and idle shutdown, {options.lifecycle_runs} run(s) per variant")
        measure_lifecycles(variants, options, postgres.url, redis.url, tmp)
        log("starting the variants side by side")
        stack.callback(stop_services, variants)
        start_services(variants, postgres.url, redis.url, tmp)
        seeding = next((v for v in variants if v.name == "bare"), variants[0])
        assert seeding.service is not None
        item_id = seed_item(seeding.service)
        seeding.requests += 2
        for variant in variants:
            extra[variant.name]["x_request_id"] = echoes_request_id(variant)
        paths = {route: route.replace("{id}", str(item_id)) for route in options.routes}
        run_rounds(variants, options, paths)
        for variant in variants:
            assert variant.service is not None and variant.service.process is not None
            workers = children(variant.service.process.pid)
            extra[variant.name]["peak_rss_mib_per_worker"] = [
                rss for rss in (peak_rss_mib(pid) for pid in workers) if rss is not None
            ]
            extra[variant.name]["request_metrics"] = serves_request_metrics(variant)
        stop_services(variants)
        wait_for_spans(variants)
        for variant in variants:
            assert variant.service is not None
            lines = access_lines(variant.service)
            if variant.access_log:
                extra[variant.name]["access_lines"] = lines
            else:
                extra[variant.name]["stray_access_lines"] = lines["request_completed"]
            if variant.jobs is not None:
                extra[variant.name]["component_app"] = component_app_lines(variant.service)
    log("JSON formatter speed on one core")
    results = summarise(variants, options, extra)
    results["formatter"] = formatter_speed(options.formatter_lines)
    log("the floor of each job, in one process (bench/floors.py)")
    results["floors"] = floors.run_floors(options.smoke)
    return results


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    defaults = Options()
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="default: %(default)s")
    parser.add_argument(
        "--duration-s", type=float, default=defaults.duration_s, help="per wrk run: %(default)s"
    )
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--lifecycle-runs", type=int, default=defaults.lifecycle_runs)
    parser.add_argument("--formatter-lines", type=int, default=defaults.formatter_lines)
    parser.add_argument(
        "--variants",
        default=",".join(defaults.variants),
        help="comma-separated; default: %(default)s;\non request: " + ",".join(ON_REQUEST),
    )
    parser.add_argument("--routes", default=",".join(defaults.routes))
    parser.add_argument("--out", type=Path, default=defaults.out, help="results folder")
    parser.add_argument(
        "--before",
        metavar="COMMIT",
        help="also run that commit's bare, full-no-export and full (before-bare, ...) side by side",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a very short run (CI): 1 round of 1 s, short floors, and so on",
    )

    args = parser.parse_args(argv)
    options = Options(
        rounds=args.rounds,
        duration_s=args.duration_s,
        warmup_s=args.warmup_s,
        connections=args.connections,
        lifecycle_runs=args.lifecycle_runs,
        formatter_lines=args.formatter_lines,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        routes=tuple(r.strip() for r in args.routes.split(",") if r.strip()),
        out=args.out,
        smoke=args.smoke,
        before=args.before,
    )
    if args.smoke:
        options.rounds, options.duration_s, options.warmup_s = 1, 1.0, 0.0
        options.lifecycle_runs, options.formatter_lines = 1, 5_000
    unknown_variants = [v for v in options.variants if v not in (*VARIANTS, *ON_REQUEST)]
    if unknown_variants:
        parser.error(f"unknown variants {unknown_variants}; see --help")
    unknown = set(options.routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes {sorted(unknown)}; known: {', '.join(ROUTES)}")
    if options.rounds < 1 or options.duration_s < 1 or options.connections < 1:
        parser.error("--rounds, --duration-s and --connections must be at least 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    problems = check_prerequisites(options)
    if problems:
        for problem in problems:
            print(f"bench: {problem}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        results = run(options)
    except (LoadError, LifecycleError, httpx.HTTPError, floors.FloorError) as exc:
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    results["conditions"]["bench_seconds"] = round(time.monotonic() - started, 1)
    options.out.mkdir(parents=True, exist_ok=True)
    json_path = options.out / "bench.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    from bench.chart import write_chart

    write_chart(results, options.out / "bench.png")
    print()
    print(table(results))
    print(
        f"\nresults: {json_path.name} and bench.png in {options.out.name}/ "
        f"({results['conditions']['bench_seconds']:.0f} s)"
    )
    problems = problems_in(results)
    for problem in problems:
        print(f"bench: {problem}", file=sys.stderr)
    return 1 if problems else 0
