"""The instruments: names, bounded labels, build info, and prometheus_client's multiprocess
mode as the service relies on it (sums across processes, dead workers' live gauges)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.telemetry.metrics import (
    DURATION_BUCKETS,
    AppMetrics,
    BuildInfo,
    metric_name_prefix,
)

REPO = Path(__file__).resolve().parents[3]


def samples(metrics: AppMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def metrics() -> AppMetrics:
    return AppMetrics(BuildInfo("api", "1.2.3", "abc1234"))


@pytest.mark.parametrize(
    ("service", "prefix"),
    [("api", "api"), ("fastapi-app", "fastapi_app"), ("9lives", "_9lives"), ("a.b/c", "a_b_c")],
)
def test_service_name_becomes_a_metric_name(service: str, prefix: str) -> None:
    assert metric_name_prefix(service) == prefix


def test_build_info(metrics: AppMetrics) -> None:
    found = samples(metrics)
    assert found[("api_build_info", (("revision", "abc1234"), ("version", "1.2.3")))] == 1


def test_request_duration_labels_and_buckets(metrics: AppMetrics) -> None:
    metrics.observe_request("GET", "/api/items/{item_id}", 200, 0.003)
    metrics.observe_request("GET", "/api/items/{item_id}", 200, 0.2)
    found = samples(metrics)
    labels = (
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("http_route", "/api/items/{item_id}"),
    )
    assert found[("http_server_request_duration_seconds_count", labels)] == 2
    assert found[("http_server_request_duration_seconds_sum", labels)] == pytest.approx(0.203)
    assert found[("http_server_request_duration_seconds_bucket", (*labels, ("le", "0.005")))] == 1
    assert found[("http_server_request_duration_seconds_bucket", (*labels, ("le", "0.25")))] == 2
    assert DURATION_BUCKETS[0] == 0.005 and DURATION_BUCKETS[-1] == 10.0


def test_clients_cannot_create_label_values(metrics: AppMetrics) -> None:
    """Unknown methods are _OTHER; an unmatched path is the empty route, never the URL."""
    for n in range(50):
        metrics.observe_request(f"FOO{n}", "", 404, 0.001)
        metrics.active(f"BAR{n}").inc()
    found = samples(metrics)
    routes = {dict(k[1]).get("http_route") for k in found if k[0].startswith("http_server_req")}
    methods = {
        dict(k[1])["http_request_method"] for k in found if "http_request_method" in dict(k[1])
    }
    assert routes == {""}
    assert methods == {"_OTHER"}
    assert len(metrics._durations) == 1 and len(metrics._active) == 1


def test_active_requests_and_shutdown_counters(metrics: AppMetrics) -> None:
    metrics.active("GET").inc()
    metrics.active("GET").inc()
    metrics.active("GET").dec()
    metrics.refused_requests.inc()
    metrics.cut_requests.inc(2)
    found = samples(metrics)
    assert found[("http_server_active_requests", (("http_request_method", "GET"),))] == 1
    assert found[("http_server_refused_requests_total", ())] == 1
    assert found[("http_server_cut_requests_total", ())] == 2


def test_checks_and_cache(metrics: AppMetrics) -> None:
    metrics.observe_check("database", 0.004, None)
    metrics.observe_check("redis", 0.8, "timeout")
    metrics.cache["hit"].inc()
    metrics.cache["fallback"].inc()
    found = samples(metrics)
    assert found[("readiness_check_duration_seconds_count", (("check", "database"),))] == 1
    assert (
        found[("readiness_check_failures_total", (("check", "redis"), ("reason", "timeout")))] == 1
    )
    assert (
        "readiness_check_failures_total",
        (("check", "database"), ("reason", "error")),
    ) not in found
    assert found[("cache_lookups_total", (("result", "hit"),))] == 1
    assert found[("cache_lookups_total", (("result", "miss"),))] == 0
    assert found[("cache_lookups_total", (("result", "fallback"),))] == 1


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_imported_before_the_directory_was_set_is_refused(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import os, prometheus_client
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
        from service.telemetry.metrics import AppMetrics, BuildInfo
        AppMetrics(BuildInfo("api", "1", "x"))
        """,
        {},
    )
    assert result.returncode != 0
    assert "imported before PROMETHEUS_MULTIPROC_DIR was set" in result.stderr


def test_multiprocess_sums_survive_death_and_drop_dead_live_gauges(tmp_path: Path) -> None:
    """What the master relies on: forked workers' counters add up and stay after a worker
    is gone; mark_process_dead removes only the dead worker's live gauge."""
    result = run_python(
        f"""
        import os, sys
        from pathlib import Path
        from service.server import metrics_listener
        metrics_listener.prepare(Path({str(tmp_path)!r}))
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        from service.telemetry.metrics import AppMetrics, BuildInfo

        def worker(n):
            metrics = AppMetrics(BuildInfo("api", "1", "x"))
            assert metrics.multiprocess
            for _ in range(n):
                metrics.observe_request("GET", "/api/ping", 200, 0.001)
            metrics.active("GET").inc()
            os._exit(0)

        pids = []
        for n in (3, 4):
            pid = os.fork()
            if pid == 0:
                worker(n)
            os.waitpid(pid, 0)
            pids.append(pid)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        before = generate_latest(registry).decode()
        metrics_listener.worker_exited(pids[0], Path({str(tmp_path)!r}))
        after = generate_latest(registry).decode()
        print(before)
        print("-----")
        print(after)
        """,
        {},
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("-----")
    count = (
        'http_server_request_duration_seconds_count{http_request_method="GET",'
        'http_response_status_code="200",http_route="/api/ping"} 7.0'
    )
    assert count in before and count in after
    assert 'http_server_active_requests{http_request_method="GET"} 2.0' in before
    assert 'http_server_active_requests{http_request_method="GET"} 1.0' in after


def test_direct_file_writes_equal_prometheus_clients_own(tmp_path: Path) -> None:
    """FileValue (the request's four updates written straight into the worker's file)
    leaves the same file contents as prometheus_client's observe/inc/dec: bucket bounds
    exactly, between, below the first and above the last; and after a fork the child
    writes its own file, not the parent's."""
    result = run_python(
        f"""
        import os
        from pathlib import Path
        from service.server import metrics_listener
        metrics_listener.prepare(Path({str(tmp_path)!r}))
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        from service.telemetry.metrics import DURATION_BUCKETS, AppMetrics, BuildInfo

        SECONDS = [0.0, *DURATION_BUCKETS, 0.0051, 0.3, 9.99, 10.0001, 120.0]

        def record(direct: bool, method: str) -> None:
            metrics = AppMetrics(BuildInfo("api", "1", "x"))
            for seconds in SECONDS:
                if direct:
                    metrics.observe_request(method, "/r", 200, seconds)
                    metrics.active(method).inc()
                else:
                    metrics.request_duration.labels(method, "/r", 200).observe(seconds)
                    metrics.active_requests.labels(method).inc()
            (metrics.active(method) if direct else metrics.active_requests.labels(method)).dec()

        def in_child(action) -> None:
            pid = os.fork()
            if pid == 0:
                action()
                os._exit(0)
            os.waitpid(pid, 0)

        in_child(lambda: record(True, "GET"))
        in_child(lambda: record(False, "PUT"))
        # made before a fork, used in the parent and then in the child
        metrics = AppMetrics(BuildInfo("api", "1", "x"))
        metrics.observe_request("POST", "/r", 201, 0.02)
        in_child(lambda: metrics.observe_request("POST", "/r", 201, 0.02))
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        print("files", sorted(p.name for p in Path({str(tmp_path)!r}).iterdir()))
        """,
        {},
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    samples = {}
    for line in text.splitlines():
        if line.startswith("http_server_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = value
    direct = {k.replace('"GET"', "M"): v for k, v in samples.items() if '"GET"' in k}
    stock = {k.replace('"PUT"', "M"): v for k, v in samples.items() if '"PUT"' in k}
    assert direct == stock and len(direct) == 17 + 1, (direct, stock)
    post = (
        'http_server_request_duration_seconds_count{http_request_method="POST",'
        'http_response_status_code="201",http_route="/r"} 2.0'
    )
    assert post in text  # one in the parent's file, one in the child's
    assert text.count("histogram_") == 4, text  # 3 children, the parent


def test_direct_file_writes_follow_the_file_when_it_grows(tmp_path: Path) -> None:
    """prometheus_client maps a worker's file anew when new label values make it grow:
    a FileValue made before the growth still adds into the file the collector reads."""
    result = run_python(
        f"""
        from pathlib import Path
        from service.server import metrics_listener
        metrics_listener.prepare(Path({str(tmp_path)!r}))
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        from service.telemetry.metrics import AppMetrics, BuildInfo

        metrics = AppMetrics(BuildInfo("api", "1", "x"))
        metrics.observe_request("GET", "/first", 200, 0.01)
        [first] = metrics._durations.values()
        mapping = first.sum.file._m
        route = 0
        while first.sum.file._m is mapping:  # new children until the file grows
            route += 1
            metrics.observe_request("GET", f"/route-{{route:06d}}/" + "x" * 100, 200, 0.01)
        metrics.observe_request("GET", "/first", 200, 0.01)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        """,
        {},
    )
    assert result.returncode == 0, result.stderr
    first = (
        'http_server_request_duration_seconds_count{http_request_method="GET",'
        'http_response_status_code="200",http_route="/first"} 2.0'
    )
    assert first in result.stdout
