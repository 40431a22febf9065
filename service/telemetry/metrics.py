"""Prometheus instruments of one worker: HTTP requests, the drain, readiness checks, cache.

Names follow the OpenTelemetry semantic conventions in their Prometheus form
(http.server.request.duration -> http_server_request_duration_seconds). Under Gunicorn every
worker writes its values to its own files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode, set up by the master before the first fork: service/server/metrics_listener.py)
and the master's listener serves their sum. Without that directory (uvicorn alone, tests) the
values live in this process and `registry` exposes them.

Per request: one histogram observation (the sum and one bucket) and two gauge updates, on
label children cached here so the hot path skips prometheus_client's label handling.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as prometheus_values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The semantic conventions' advice for http.server.request.duration.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
CHECK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.8)
# http.request.method: a method outside this set is "_OTHER", so a client cannot create
# label values (the same rule as for unmatched routes, whose http_route is "").
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
OTHER_METHOD = "_OTHER"
CACHE_RESULTS = ("hit", "miss", "fallback")


def metric_name_prefix(service_name: str) -> str:
    """SERVICE_NAME as the start of a metric name: [a-zA-Z_][a-zA-Z0-9_]*."""
    name = re.sub(r"[^a-zA-Z0-9_]+", "_", service_name).strip("_") or "service"
    return f"_{name}" if name[0].isdigit() else name


class BuildInfo(Collector):
    """`<service>_build_info{version, revision} 1`: a constant, computed at every collection
    (no per-process file, so the master serves it too)."""

    def __init__(self, service_name: str, version: str, revision: str) -> None:
        self.name = f"{metric_name_prefix(service_name)}_build_info"
        self.version = version
        self.revision = revision

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            self.name,
            "The running build: version and revision labels, value 1.",
            labels=("version", "revision"),
        )
        family.add_metric((self.version, self.revision), 1)
        yield family


def multiprocess_mode() -> bool:
    """True when values go to PROMETHEUS_MULTIPROC_DIR. prometheus_client picks its value
    class when first imported: imported before the variable was set, each worker would count
    alone and a scrape would read one of them, so that is refused here."""
    if MULTIPROC_ENV not in os.environ:
        return False
    if not prometheus_values.ValueClass._multiprocess:
        raise RuntimeError(
            f"prometheus_client was imported before {MULTIPROC_ENV} was set: "
            "worker metrics would not add up"
        )
    return True


class AppMetrics:
    """The instruments, registered in their own registry (one set per app)."""

    def __init__(self, build_info: BuildInfo) -> None:
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(build_info)
        registry = self.registry
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ("http_request_method", "http_route", "http_response_status_code"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.active_requests = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            ("http_request_method",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.refused_requests = Counter(
            "http_server_refused_requests",
            "Requests answered 503 while draining (after SHUTDOWN_DELAY_SECONDS).",
            registry=registry,
        )
        self.cut_requests = Counter(
            "http_server_cut_requests",
            "Requests still running when the grace period ran out, cancelled.",
            registry=registry,
        )
        self.check_duration = Histogram(
            "readiness_check_duration_seconds",
            "Duration of the readiness probe's dependency checks, failed ones included.",
            ("check",),
            buckets=CHECK_BUCKETS,
            registry=registry,
        )
        self.check_failures = Counter(
            "readiness_check_failures",
            "Failed readiness checks (reason: timeout or error).",
            ("check", "reason"),
            registry=registry,
        )
        cache_lookups = Counter(
            "cache_lookups",
            "Cache reads: hit, miss, or fallback (Redis failed or bypassed: the database answers).",
            ("result",),
            registry=registry,
        )
        self.cache = {result: cache_lookups.labels(result) for result in CACHE_RESULTS}
        self._durations: dict[tuple[str, str, int], Histogram] = {}
        self._active: dict[str, Gauge] = {}

    def active(self, method: str) -> Gauge:
        """The active-requests gauge of this method (inc at the start, dec at the end)."""
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        gauge = self._active.get(method)
        if gauge is None:
            gauge = self._active[method] = self.active_requests.labels(method)
        return gauge

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """route: the matched route's template ("" when no route matched)."""
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        key = (method, route, status)
        child = self._durations.get(key)
        if child is None:
            child = self._durations[key] = self.request_duration.labels(method, route, status)
        child.observe(seconds)

    def observe_check(self, check: str, seconds: float, failure: str | None) -> None:
        self.check_duration.labels(check).observe(seconds)
        if failure is not None:
            self.check_failures.labels(check, failure).inc()
