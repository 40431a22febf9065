"""The canary drill for real (tools/drill/canary.py): the chart's rendered Flagger analysis,
its queries evaluated by a real Prometheus scraping real Gunicorn replicas behind HAProxy.

Shortened (stepWeight 10, maxWeight 30, threshold 2, a step every 4 s): a good canary is
promoted without a failed request, an erroring one rolled back at 10 % having failed only
its own requests, a slow one rolled back by the latency query; the control (the erroring
canary, analysis off) must be promoted, or the drill could not tell the two apart.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import helm_binary
from tests.support import require_tool
from tools.drill.canary import pod_name, render_analysis
from tools.testbed.support import REPO_ROOT

SHORT = ("--step-weight", "10", "--max-weight", "30", "--threshold", "2", "--interval", "4")


def canary_drill(tmp_path: Path, *args: str, timeout_s: float) -> tuple[int, dict[str, Any]]:
    tools = [
        "--helm", helm_binary(),
        "--haproxy", require_tool("haproxy", "Debian: apt-get install haproxy"),
        "--prometheus", require_tool("prometheus", "Debian: apt-get install prometheus"),
    ]  # fmt: skip
    out = tmp_path / "drill-canary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.drill.canary", *tools, *SHORT, "--json", str(out), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    print(proc.stdout, proc.stderr, sep="\n")  # shown by pytest when an assertion fails
    assert out.exists(), f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(out.read_text())


def checks_failed(scenario: dict[str, Any]) -> set[str]:
    return {c["metric"] for s in scenario["steps"] for c in s["checks"] if not c["passed"]}


def test_queries_select_the_canarys_pod_names_only() -> None:
    analysis = render_analysis(helm_binary(), interval_s=4, metrics_interval="10s")
    assert [m.name for m in analysis.metrics] == ["success-rate", "latency-p99"]
    for metric in analysis.metrics:
        assert "{{" not in metric.query and "[10s]" in metric.query
        pods = re.findall(r'pod=~"([^"]+)"', metric.query)
        assert pods and all(p == pods[0] for p in pods)
        assert re.fullmatch(pods[0], pod_name(analysis.target, "good", "canary", 2))
        for role in ("primary", "promoted"):
            assert not re.fullmatch(pods[0], pod_name(analysis.target, "good", role, 0))


@pytest.mark.drill
@pytest.mark.timeout(240)
def test_analysis_promotes_the_good_canary_and_rolls_back_the_bad_ones(tmp_path: Path) -> None:
    code, result = canary_drill(tmp_path, timeout_s=220)
    scenarios = {s["name"]: s for s in result["scenarios"]}
    assert list(scenarios) == ["good", "errors", "slow"]
    assert code == 0, [s["problems"] for s in result["scenarios"]]

    good = scenarios["good"]
    assert good["decision"] == "promoted"
    assert good["weight_at_decision"] == 30
    assert good["summary"]["failed"] == 0
    assert good["versions_after_promotion"].keys() == {"canary"}

    errors = scenarios["errors"]
    assert errors["decision"] == "rolled_back"
    assert errors["weight_at_decision"] <= 30
    assert "success-rate" in checks_failed(errors)
    assert 0 < errors["summary"]["failed"] <= 0.03 * errors["summary"]["sent"]
    assert errors["failed_by_version"].keys() == {"canary"}

    slow = scenarios["slow"]
    assert slow["decision"] == "rolled_back"
    for step in slow["steps"]:  # every step: too slow, and not failing (no data aside)
        checks = {c["metric"]: c for c in step["checks"]}
        assert checks["latency-p99"]["value"] > checks["latency-p99"]["max"], step
        assert checks["success-rate"]["passed"] or checks["success-rate"]["value"] is None


@pytest.mark.drill
@pytest.mark.timeout(150)
def test_control_without_analysis_promotes_the_erroring_canary(tmp_path: Path) -> None:
    code, result = canary_drill(tmp_path, "--control", timeout_s=130)
    assert result["control"] is True
    (errors,) = result["scenarios"]
    assert errors["name"] == "errors" and errors["analysis_on"] is False
    assert errors["decision"] == "promoted"
    assert "success-rate" in checks_failed(errors)  # the analysis would have stopped it
    assert code == 0, errors["problems"]
