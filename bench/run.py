# Usage: .venv/bin/python -m bench [--rounds N] [--duration-s S] [--smoke] [--out DIR]  (make bench)
"""The benchmark: the cost of full observability, side by side on the real Gunicorn command.

The variants of the same app run at once against one PostgreSQL, one Redis and one local
OTLP/HTTP receiver per variant:
  bare   OBSERVABILITY=off: no tracing, no access log (request id and shutdown middleware
         stay, as in the product)
  floor  the least any code can spend on full's observable work (bench/floor_app.py): the
         same app with one minimal pure-ASGI layer (request id, one server span with the
         same attributes exported the same way, the same metrics updates, one JSON access
         line written with one write(2)) and the same dependency spans; the goal is
         full >= 0.95 x floor
  full   the product's default: a server span per request at 100% sampling, exported
         through a BatchSpanProcessor and the OTLP/HTTP exporter; the JSON access log;
         Prometheus metrics (request duration histogram, active requests)
  stock  bare plus the contrib opentelemetry-instrumentation-fastapi (bench/stock_app.py),
         exporting the same way; no access log
  stock-lean  stock with its leanest option, exclude_spans=["receive", "send"] (no
         internal span per ASGI message: one span per request, like ours)
Two more, on request (--variants), show where full's cost goes:
  full-no-export      full with OTEL_TRACES_EXPORTER=none: spans made, never exported
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
to round) with wrk for the same time; figures are medians over the rounds, and ratios are
taken within a round, so slow phases of a shared machine hit both sides of a ratio.
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

from bench.lifecycle import Lifecycle, LifecycleError, measure_lifecycle, wait_ready
from bench.load import LoadError, LoadResult, children, peak_rss_mib, run_wrk, wrk_binary
from bench.receiver import CountingReceiver
from tools.testbed.servers import GUNICORN_COMMAND, PostgresServer, RedisServer, ServiceProcess
from tools.testbed.support import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
VARIANTS = ("bare", "floor", "full", "stock", "stock-lean")
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
# The ratios printed beside each variant's figures.
REFERENCES = ("bare", "floor")
# Start-up and shutdown are measured for the product's two modes only.
LIFECYCLE_VARIANTS = ("bare", "full")
ROUTES = ("/api/ping", "/api/items/{id}")
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
    # faster with more rounds than with longer ones (same total time as 5 x 6 s).
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


@dataclass
class Variant:
    name: str
    app: str
    observability: str
    receiver: CountingReceiver
    extra_env: dict[str, str] = field(default_factory=dict)
    exports: bool = True  # spans must reach its receiver
    access_log: bool = False  # its log must hold an access line per request
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
            "LOG_LEVEL": "info",
            **self.extra_env,
        }

    def new_service(self, database_url: str, redis_url: str, tmp_dir: Path) -> ServiceProcess:
        service = ServiceProcess(env=self.env(database_url, redis_url), tmp_dir=tmp_dir)
        service.command = [*GUNICORN_COMMAND[:-1], self.app]
        return service


def make_variant(name: str) -> Variant:
    if name == "bare":
        return Variant(name, "service.main:app", "off", CountingReceiver(), exports=False)
    if name == "full":
        return Variant(name, "service.main:app", "full", CountingReceiver(), access_log=True)
    if name == "floor":
        return Variant(name, "bench.floor_app:app", "full", CountingReceiver(), access_log=True)
    if name in AB_APPS:  # full with one or both of its speed changes undone
        return Variant(name, AB_APPS[name], "full", CountingReceiver(), access_log=True)
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
        for path in paths.values():
            for variant in variants:
                load(variant, path, options.warmup_s, options)
        log(f"  warmed up every variant on every route for {options.warmup_s:g} s")
    for round_index in range(options.rounds):
        for route, path in paths.items():
            line = []
            for name in rotated([v.name for v in variants], round_index):
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
                if reference in by_name and variant.name != reference:
                    entry.update(ratios_to(reference, runs, by_name[reference].runs[route]))
            summary["variants"][variant.name] = entry
        routes[route] = summary
    per_variant: dict[str, Any] = {}
    for variant in variants:
        spans, exports = variant.receiver.counts()
        info: dict[str, Any] = {
            "app": variant.app,
            "OBSERVABILITY": variant.observability,
            "traced_requests": variant.requests,
            "exports_spans": variant.exports,
            "spans_received": spans,
            "export_requests": exports,
            "spans_per_request": round(spans / variant.requests, 3) if variant.requests else None,
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
    }


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
        f"{'route':<17}{'variant':<19}{'req/s':>9}{'vs bare':>9}{'vs floor':>9}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'CPU us/req':>11}{'CPU vs bare':>12}{'CPU vs floor':>13}{'errors':>7}"
    ]

    def figure(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    for route, summary in results["routes"].items():
        for name, entry in summary["variants"].items():
            cpu = entry.get("cpu_us_per_request", {}).get("median")
            rows.append(
                f"{route:<17}{name:<19}{entry['requests_per_s']['median']:>9,.0f}"
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
        f"{'variant':<19}{'ready s':>9}{'SIGTERM->exit s':>17}{'peak RSS/worker MiB':>21}"
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
            f"{name:<19}{(f'{ready:.2f}' if ready is not None else '-'):>9}"
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
    return "\n".join(rows)


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
        lines = info.get("access_lines")
        if lines is not None and lines["with_trace_id"] < lines["request_completed"]:
            problems.append(f"{name}: access lines without a trace_id")
        if lines is not None and not lines["request_completed"]:
            problems.append(f"{name}: no access line in its log")
        if any(code != 0 for code in info.get("exit_codes", [])):
            problems.append(f"{name}: exit code {info['exit_codes']} after SIGTERM")
    floor = results["variants"].get("floor", {}).get("access_lines")
    full = results["variants"].get("full", {}).get("access_lines")
    if floor and full and floor["fields"] != full["fields"]:
        problems.append(
            f"floor's access lines have other fields than full's: {floor['fields']} "
            f"vs {full['fields']}"
        )
    return problems


def run(options: Options) -> dict[str, Any]:
    variants = [make_variant(name) for name in options.variants]
    extra: dict[str, dict[str, Any]] = {v.name: {} for v in variants}
    with contextlib.ExitStack() as stack:
        for variant in variants:
            stack.enter_context(variant.receiver)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
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
        paths = {route: route.replace("{id}", str(item_id)) for route in options.routes}
        run_rounds(variants, options, paths)
        for variant in variants:
            assert variant.service is not None and variant.service.process is not None
            workers = children(variant.service.process.pid)
            extra[variant.name]["peak_rss_mib_per_worker"] = [
                rss for rss in (peak_rss_mib(pid) for pid in workers) if rss is not None
            ]
        stop_services(variants)
        wait_for_spans(variants)
        for variant in variants:
            assert variant.service is not None
            if variant.access_log:
                extra[variant.name]["access_lines"] = access_lines(variant.service)
    log("JSON formatter speed on one core")
    results = summarise(variants, options, extra)
    results["formatter"] = formatter_speed(options.formatter_lines)
    return results


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    defaults = Options()
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--duration-s", type=float, default=defaults.duration_s)
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--lifecycle-runs", type=int, default=defaults.lifecycle_runs)
    parser.add_argument("--formatter-lines", type=int, default=defaults.formatter_lines)
    parser.add_argument("--variants", default=",".join(defaults.variants))
    parser.add_argument("--routes", default=",".join(defaults.routes))
    parser.add_argument("--out", type=Path, default=defaults.out, help="results folder")
    parser.add_argument(
        "--smoke", action="store_true", help="a very short run (CI): 1 round of 1 s, and so on"
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
    )
    if args.smoke:
        options.rounds, options.duration_s, options.warmup_s = 1, 1.0, 0.0
        options.lifecycle_runs, options.formatter_lines = 1, 5_000
    for name in options.variants:
        make_variant(name)  # raises for an unknown name
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
    except (LoadError, LifecycleError, httpx.HTTPError) as exc:
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
