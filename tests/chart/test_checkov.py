"""checkov (--framework helm) finds no failed check for the default and production values;
each check skipped in the chart carries a written reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import CHART_DIR, helm_binary
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

DOCUMENTED_SKIPS = {
    "CKV_K8S_8",
    "CKV_K8S_9",
    "CKV_K8S_15",
    "CKV_K8S_21",
    "CKV_K8S_35",
    "CKV_K8S_43",
    "CKV2_K8S_6",
}


def run_checkov(values_file: Path | None) -> dict[str, Any]:
    checkov = require_tool("checkov", "bash tools/install-checkov.sh")
    helm = helm_binary()
    path = os.pathsep.join([str(Path(helm).parent), os.environ.get("PATH", "")])
    # checkov renders the chart with the `helm` it finds on PATH and passes silently without one.
    found = shutil.which("helm", path=path)
    assert found is not None, "helm must be on PATH for checkov's helm scan"
    version = subprocess.run(
        [found, "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("v3."), version
    command = [
        checkov,
        "-d",
        str(CHART_DIR),
        "--framework",
        "helm",
        "--skip-download",
        "-o",
        "json",
    ]
    if values_file is not None:
        command += ["--var-file", str(values_file)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": path, "LOG_LEVEL": "WARNING"},
    )
    assert proc.stdout.strip(), f"checkov printed nothing: {proc.stderr}"
    report = json.loads(proc.stdout)
    assert isinstance(report, dict), "expected one report (the helm framework)"
    assert report["check_type"] == "helm"
    return report


@pytest.mark.parametrize(
    "values_file",
    [
        None,
        CHART_DIR / "ci/production-values.yaml",
        CHART_DIR / "ci/production-extensions-values.yaml",
    ],
    ids=["default", "production", "production-extensions"],
)
def test_checkov_finds_no_failed_check(values_file: Path | None) -> None:
    report = run_checkov(values_file)
    summary = report["summary"]
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['check_name']} on {c['resource']}" for c in results["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    # The chart really was rendered and scanned.
    assert summary["resource_count"] >= 6, summary
    assert summary["passed"] >= 100, summary
    scanned = {c["resource"].split(".", 1)[0] for c in results["passed_checks"]}
    assert {"Deployment", "Pod"} <= scanned
    for check in results["skipped_checks"]:
        assert check["check_id"] in DOCUMENTED_SKIPS, check["check_id"]
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{check['check_id']} on {check['resource']}: no reason"
    readme = (CHART_DIR / "README.md").read_text()
    for check_id in {c["check_id"] for c in results["skipped_checks"]}:
        assert check_id in readme, f"{check_id} is skipped but not listed in the chart README"
