"""`make bench-smoke`: a very short benchmark run must work end to end (real Gunicorn,
PostgreSQL, Redis, wrk, OTLP receivers, chart). Its figures are not judged here."""

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
VARIANTS = {"bare", "floor", "full", "stock", "stock-lean"}
ROUTES = {"/api/ping", "/api/items/{id}"}


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


def test_bench_smoke_runs_every_part(tmp_path: Path) -> None:
    results = run_smoke(tmp_path)
    assert results["conditions"]["smoke"] is True
    assert set(results["routes"]) == ROUTES
    for summary in results["routes"].values():
        assert set(summary["variants"]) == VARIANTS
        for name, entry in summary["variants"].items():
            assert entry["errors"] == 0
            assert entry["requests_per_s"]["median"] > 0
            assert ("ratio_to_bare" in entry) == (name != "bare")
            assert ("ratio_to_floor" in entry) == (name != "floor")
    variants = results["variants"]
    assert variants["bare"]["spans_received"] == 0
    for name in VARIANTS - {"bare"}:
        assert variants[name]["spans_received"] > 0
    assert variants["full"]["access_lines"]["with_trace_id"] > 0
    # The floor writes the product's access line: the same fields (the run checks it too).
    assert variants["floor"]["access_lines"]["with_trace_id"] > 0
    assert variants["floor"]["access_lines"]["fields"] == variants["full"]["access_lines"]["fields"]
    for name in ("bare", "full"):
        assert variants[name]["exit_codes"] == [0]
        assert variants[name]["start_to_ready_s"]["median"] > 0
        assert variants[name]["peak_rss_mib_per_worker"]
    assert results["formatter"]["formatter_lines_per_cpu_s"] > 0
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")


def test_breakdown_variants_each_leave_out_their_part(tmp_path: Path) -> None:
    """full-no-export makes spans but exports none; full-no-access-log exports spans
    but writes no access line (a run that breaks either rule exits non-zero)."""
    variants = "bare,full-no-export,full-no-access-log"
    results = run_smoke(tmp_path, f"--variants {variants} --routes /api/ping")
    info = results["variants"]
    assert set(info) == set(variants.split(","))
    assert info["full-no-export"]["spans_received"] == 0
    assert info["full-no-export"]["access_lines"]["with_trace_id"] > 0
    assert info["full-no-access-log"]["spans_received"] > 0
    assert "access_lines" not in info["full-no-access-log"]
    ping = results["routes"]["/api/ping"]["variants"]
    assert all(entry["errors"] == 0 for entry in ping.values())


def test_floor_and_dependency_variants_export_the_spans_they_should(tmp_path: Path) -> None:
    """On the items route the floor exports what full exports, a server span and the
    dependency spans of each request (Redis GET; SELECT and SET on a miss), and so do full's
    dependency-span variants but full-no-deps (the server span only)."""
    # bare first: the item is seeded through it, so the others' spans are the load's only.
    variants = "bare,floor,full,full-no-deps,full-sdk-deps,full-contrib-deps"
    results = run_smoke(tmp_path, f"--variants {variants} --routes /api/items/{{id}}")
    info = results["variants"]
    assert set(info) == set(variants.split(","))
    # A cache hit is two spans (the server's, Redis GET); a miss four at most (GET, SELECT,
    # SET): how many of a short run's reads miss depends on the variant's order and speed.
    for name in ("floor", "full", "full-sdk-deps", "full-contrib-deps"):
        assert 1.95 <= info[name]["spans_per_request"] <= 4.05, (name, info[name])
    assert info["full-no-deps"]["spans_per_request"] == pytest.approx(1, abs=0.1)
    assert info["floor"]["access_lines"]["fields"] == info["full"]["access_lines"]["fields"]
    items = results["routes"]["/api/items/{id}"]["variants"]
    assert all(entry["errors"] == 0 for entry in items.values())
    assert all("ratio_to_floor" in entry for name, entry in items.items() if name != "floor")
    assert info["bare"]["spans_received"] == 0
