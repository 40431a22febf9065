"""Prometheus instruments of one worker: HTTP requests, the drain, readiness checks, cache.

Names follow the OpenTelemetry semantic conventions in their Prometheus form
(http.server.request.duration -> http_server_request_duration_seconds). Under Gunicorn every
worker writes its values to its own files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode, set up by the master before the first fork: service/server/metrics_listener.py)
and the master's listener serves their sum. Without that directory (uvicorn alone, tests) the
values live in this process and `registry` exposes them.

Per request: one histogram observation (the sum and one bucket) and two gauge updates, on
label children cached here so the hot path skips prometheus_client's label handling. Under
Gunicorn those four values are written straight into the worker's files (FileValue): the
same bytes in the same places as prometheus_client's own writes, without its lock, fork
check and key lookup on every call.
"""

from __future__ import annotations

import os
import re
import struct
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Protocol, cast

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
# A value and its timestamp written where prometheus_client's multiprocess files hold
# them (its MmapedDict.write_value packs them into the mmap the same way).
_WRITE_VALUE_AND_TIMESTAMP = struct.Struct("dd").pack_into


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


class Adder(Protocol):
    def inc(self, amount: float = 1) -> None: ...

    def dec(self, amount: float = 1) -> None: ...


class FileValue:
    """One value of this worker's prometheus_client multiprocess file, added to in place.

    prometheus_client's MmapedValue.inc takes a lock, checks the pid (fork) and looks the
    value's place up on every call: the request's four updates cost more than anything
    else in its metrics job (`make bench`, bench/README.md). This keeps the place, keeps the
    MmapedValue's own number in step (so its reads and later writes agree), and writes the
    same 16 bytes the same way (packed into the mmap in place, as MmapedDict.write_value
    does). The file is the one the master's collector reads, so a SIGKILL loses nothing
    added. Only for values nothing else writes, on one thread (the worker's event loop)."""

    __slots__ = ("file", "holder", "position")

    def __init__(self, holder: Any) -> None:
        holder.get()  # prometheus_client's fork check: the holder's file is this process's
        self.holder = holder
        self.file = holder._file
        self.position = self.file._positions[holder._key]

    def inc(self, amount: float = 1) -> None:
        holder = self.holder
        holder._value = value = holder._value + amount
        # _m is read each time: the file's mmap is replaced when a new value makes it grow.
        _WRITE_VALUE_AND_TIMESTAMP(self.file._m, self.position, value, 0.0)

    def dec(self, amount: float = 1) -> None:
        self.inc(-amount)


class Duration:
    """One label set of the request duration histogram, observed the way
    Histogram.observe does it: the sum, and the first bucket whose bound is >= the value
    (multiprocess files hold per-bucket counts; the collector accumulates them)."""

    __slots__ = ("buckets", "sum")

    def __init__(self, child: Histogram) -> None:
        self.sum = FileValue(child._sum)
        self.buckets = [FileValue(bucket) for bucket in child._buckets]

    def observe(self, seconds: float) -> None:
        self.sum.inc(seconds)
        self.buckets[bisect_left(_DURATION_BOUNDS, seconds)].inc()


_DURATION_BOUNDS = (*DURATION_BUCKETS, float("inf"))


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
        self.cache_lookups = Counter(
            "cache_lookups",
            "Cache reads: hit, miss, or fallback (Redis failed or bypassed: the database answers).",
            ("result",),
            registry=registry,
        )
        self.cache: dict[str, Adder] = {}
        self._durations: dict[tuple[str, str, int], Histogram | Duration] = {}
        self._active: dict[str, Adder] = {}
        self.forget_children()
        # A fork copies the places of the parent's files: start over in the child.
        forget = weakref.WeakMethod(self.forget_children)
        os.register_at_fork(after_in_child=lambda: (method := forget()) and method())

    def forget_children(self) -> None:
        self._durations = {}
        self._active = {}
        # One lookup per read of the items route: written straight in, as the request's.
        self.cache = {
            result: self.adder(self.cache_lookups.labels(result)) for result in CACHE_RESULTS
        }

    def adder(self, child: Counter | Gauge) -> Adder:
        """A counter's or gauge's child, or its FileValue under Gunicorn."""
        return FileValue(child._value) if self.multiprocess else cast(Adder, child)

    def active(self, method: str) -> Adder:
        """The active-requests gauge of this method (inc at the start, dec at the end)."""
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        gauge = self._active.get(method)
        if gauge is None:
            gauge = self._active[method] = self.adder(self.active_requests.labels(method))
        return gauge

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """route: the matched route's template ("" when no route matched)."""
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        key = (method, route, status)
        child = self._durations.get(key)
        if child is None:
            labelled = self.request_duration.labels(method, route, status)
            child = Duration(labelled) if self.multiprocess else labelled
            self._durations[key] = child
        child.observe(seconds)

    def observe_check(self, check: str, seconds: float, failure: str | None) -> None:
        self.check_duration.labels(check).observe(seconds)
        if failure is not None:
            self.check_failures.labels(check, failure).inc()
