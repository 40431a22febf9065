"""`make bench-smoke`: a very short benchmark run must work end to end (real Gunicorn,
PostgreSQL, Redis, wrk, OTLP receivers, chart, the floors' process). Its figures are
recorded, not judged here: each component's cost and floor must be there as a number."""

from __future__ import annotations

import glob
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import missing, require_tool
from tools.testbed.support import REPO_ROOT

# `make bench-smoke` may install bench/requirements.txt first: a run has up to 600 s, and
# the test's own timeout stays above it so the build output is reported, not lost.
SMOKE_TIMEOUT_S = 600
pytestmark = [pytest.mark.integration, pytest.mark.timeout(SMOKE_TIMEOUT_S + 120)]
COMPONENT_VARIANTS = {
    "job-request-id",
    "job-span",
    "job-log-context",
    "job-access-line",
    "job-metrics",
    "job-span-export",
    "job-span-context",
    "job-span-context-deps",
}
# least: full's work done the least way (bench/least_app.py), the goals' reference.
VARIANTS = {"bare", *COMPONENT_VARIANTS, "full-no-export", "full", "least"}
ROUTES = {"/api/ping", "/api/items/{id}"}
# job-span-context-deps runs on the items route only (ping reads nothing).
ROUTE_VARIANTS = {
    "/api/ping": VARIANTS - {"job-span-context-deps"},
    "/api/items/{id}": VARIANTS,
}
COMPONENTS = {
    "request_id",
    "span",
    "log_context",
    "access_line",
    "metrics",
    "span_and_log_context",
    "log_context_with_span",
    "export",
    "dependency_spans",
    "all_no_export",
    "all",
}
ROUTE_COMPONENTS = {"/api/ping": COMPONENTS - {"dependency_spans"}, "/api/items/{id}": COMPONENTS}
FLOOR_ROWS = {"layer", "request_id", "span", "log_context", "access_line", "metrics", "all"}


def run_smoke(out: Path, bench_args: str = "") -> dict[str, Any]:
    """`make bench-smoke` into `out`; its JSON results."""
    make = require_tool("make")
    require_tool("wrk", "apt-get install wrk")
    require_tool("redis-server", "apt-get install redis-server")
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        missing("PostgreSQL server binaries (apt-get install postgresql)")
    # The make target installs bench/requirements.txt into .venv first (once).
    completed = subprocess.run(
        [make, "-s", "bench-smoke", f"BENCH_SMOKE_OUT={out}", f"BENCH_ARGS={bench_args}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "vs bare" in completed.stdout
    results: dict[str, Any] = json.loads((out / "bench.json").read_text())
    return results


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_bench_smoke_runs_every_part(tmp_path: Path) -> None:
    results = run_smoke(tmp_path)
    assert results["conditions"]["smoke"] is True
    assert set(results["routes"]) == ROUTES
    for route, summary in results["routes"].items():
        assert set(summary["variants"]) == ROUTE_VARIANTS[route]
        for name, entry in summary["variants"].items():
            assert entry["errors"] == 0
            assert entry["requests_per_s"]["median"] > 0
            assert ("ratio_to_bare" in entry) == (name != "bare")
            assert "ratio_to_floor" not in entry  # no floor variant by default
    variants = results["variants"]
    # Only the exporting variants' spans reach their receivers (the run checks it too).
    for name in VARIANTS:
        exports = name in ("job-span-export", "full", "least")
        assert (variants[name]["spans_received"] > 0) == exports, name
    assert variants["job-span-export"]["spans_per_request"] == pytest.approx(1, abs=0.05)
    assert variants["full"]["access_lines"]["with_trace_id"] > 0
    assert variants["full-no-export"]["access_lines"]["with_trace_id"] > 0
    # The access line alone: lines, none with a trace id (no span is current).
    lines = variants["job-access-line"]["access_lines"]
    assert lines["request_completed"] > 0 and lines["with_trace_id"] == 0
    # least writes the product's access line with its own code: the same fields.
    assert variants["least"]["access_lines"]["with_trace_id"] > 0
    assert variants["least"]["access_lines"]["fields"] == variants["full"]["access_lines"]["fields"]
    for name in VARIANTS - {"job-access-line", "full-no-export", "full", "least"}:
        assert variants[name]["stray_access_lines"] == 0, name
    for name in VARIANTS:
        echoes = name in ("job-request-id", "full-no-export", "full", "least")
        assert variants[name]["x_request_id"] is echoes, name
        metrics = name in ("job-metrics", "full-no-export", "full")
        assert variants[name]["request_metrics"] is metrics, name
    for name in COMPONENT_VARIANTS:
        [worker, _] = variants[name]["component_app"]
        assert worker["jobs"] == variants[name]["expected"]["jobs"]
        assert worker["traced_redis"] is (name == "job-span-context-deps")
    # Every component's cost, every floor, and the three goals: recorded as numbers.
    for route, rows in results["components"].items():
        assert set(rows) == ROUTE_COMPONENTS[route]
        for row in rows.values():
            assert is_number(row["added_cpu_us"]) and is_number(row["cpu_ratio_to_bare"])
    floors = results["floors"]["jobs"]
    assert set(floors) == FLOOR_ROWS | {"export"}
    for row in floors.values():
        assert is_number(row["ours_us"]) and is_number(row["floor_us"])
    assert results["floors"]["checks"]["export_same_message"] is True
    goals = results["goals"]
    assert [(g["variant"], g["route"], g["goal"]) for g in goals] == [
        ("full-no-export", "/api/ping", 0.75),
        ("full", "/api/ping", 0.67),
        ("full", "/api/items/{id}", 0.80),
    ]
    assert all(is_number(g["cpu_ratio_to_bare"]) and g["met"] in (True, False) for g in goals)
    assert all(is_number(g["least_cpu_ratio_to_bare"]) for g in goals)
    # One round: no interval (bench/stats.py needs three), but the field is there.
    assert all(g["cpu_ratio_interval"] is None for g in goals)
    for name in ("bare", "full"):
        assert variants[name]["exit_codes"] == [0]
        assert variants[name]["start_to_ready_s"]["median"] > 0
        assert variants[name]["peak_rss_mib_per_worker"]
    assert results["formatter"]["formatter_lines_per_cpu_s"] > 0
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")


def test_breakdown_variants_each_leave_out_their_part(tmp_path: Path) -> None:
    """full-no-export makes spans but exports none; full-no-access-log exports spans
    but writes no access line (a run that breaks either rule exits non-zero); the stock
    variants (on request) export theirs."""
    variants = "bare,full-no-export,full-no-access-log,stock,stock-lean"
    results = run_smoke(tmp_path, f"--variants {variants} --routes /api/ping")
    info = results["variants"]
    assert set(info) == set(variants.split(","))
    assert info["full-no-export"]["spans_received"] == 0
    assert info["full-no-export"]["access_lines"]["with_trace_id"] > 0
    assert info["full-no-access-log"]["spans_received"] > 0
    assert "access_lines" not in info["full-no-access-log"]
    assert info["stock"]["spans_received"] > 0
    assert info["stock-lean"]["spans_received"] > 0
    # A goal whose variant did not run is recorded as not measured.
    goals = results["goals"]
    assert is_number(goals[0]["cpu_ratio_to_bare"])  # full-no-export on ping
    assert [(g["cpu_ratio_to_bare"], g["met"]) for g in goals[1:]] == [(None, None)] * 2
    ping = results["routes"]["/api/ping"]["variants"]
    assert all(entry["errors"] == 0 for entry in ping.values())


def test_floor_and_dependency_variants_export_the_spans_they_should(tmp_path: Path) -> None:
    """On the items route the floor and least export what full exports, a server span and the
    dependency spans of each request (Redis GET; SELECT and SET on a miss), and so do full's
    dependency-span variants but full-no-deps (the server span only)."""
    # bare first: the item is seeded through it, so the others' spans are the load's only.
    variants = "bare,floor,least,full,full-no-deps,full-sdk-deps,full-contrib-deps"
    results = run_smoke(tmp_path, f"--variants {variants} --routes /api/items/{{id}}")
    info = results["variants"]
    assert set(info) == set(variants.split(","))
    # A cache hit is two spans (the server's, Redis GET); a miss four at most (GET, SELECT,
    # SET): how many of a short run's reads miss depends on the variant's order and speed.
    for name in ("floor", "least", "full", "full-sdk-deps", "full-contrib-deps"):
        assert 1.95 <= info[name]["spans_per_request"] <= 4.05, (name, info[name])
    assert info["full-no-deps"]["spans_per_request"] == pytest.approx(1, abs=0.1)
    # The floor writes the product's access line: the same fields (the run checks it too).
    assert info["floor"]["access_lines"]["with_trace_id"] > 0
    assert info["floor"]["access_lines"]["fields"] == info["full"]["access_lines"]["fields"]
    items = results["routes"]["/api/items/{id}"]["variants"]
    assert all(entry["errors"] == 0 for entry in items.values())
    assert all("ratio_to_floor" in entry for name, entry in items.items() if name != "floor")
    assert info["bare"]["spans_received"] == 0
