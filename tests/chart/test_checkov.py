"""checkov (--framework helm) finds no failed check for the default and production values,
with the skips of deploy/checkov.yaml (each with its written reason, none on the rendered
objects); production values with the test pod off pass without the skips they do not need."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART_DIR, helm_binary, render
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

CONFIG = REPO_ROOT / "deploy/checkov.yaml"
# Skipped for the defaults and the helm test pod only: production values (test pod off) pass
# them, so the production scan runs them.
PRODUCTION_PASSES = {"CKV_K8S_43", "CKV2_K8S_6", "CKV_K8S_8", "CKV_K8S_9"}


def config_skips() -> list[str]:
    skips: list[str] = yaml.safe_load(CONFIG.read_text())["skip-check"]
    return skips


def run_checkov(*values_files: Path, skip: list[str] | None = None) -> dict[str, Any]:
    """checkov on the chart: with the config file, or with exactly the `skip` checks skipped."""
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
    if skip is None:
        command += ["--config-file", str(CONFIG)]
    elif skip:
        command += ["--skip-check", ",".join(skip)]
    for values_file in values_files:
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


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['check_name']} on {c['resource']}"
        for c in report["results"]["failed_checks"]
    ]


@pytest.mark.parametrize(
    "values_file",
    [
        None,
        CHART_DIR / "ci/production-values.yaml",
        CHART_DIR / "ci/production-extensions-values.yaml",
        CHART_DIR / "ci/migrations-extensions-values.yaml",
    ],
    ids=["default", "production", "production-extensions", "migrations-extensions"],
)
def test_checkov_finds_no_failed_check(values_file: Path | None) -> None:
    report = run_checkov(*([] if values_file is None else [values_file]))
    summary = report["summary"]
    results = report["results"]
    assert summary["failed"] == 0, "\n".join(failures(report))
    assert summary["parsing_errors"] == 0
    # The chart really was rendered and scanned.
    assert summary["resource_count"] >= 6, summary
    assert summary["passed"] >= 100, summary
    scanned = {c["resource"].split(".", 1)[0] for c in results["passed_checks"]}
    assert {"Deployment", "Pod"} <= scanned
    # The config file's checks were not run at all: nothing is skipped by annotation.
    assert summary["skipped"] == 0 and not results["skipped_checks"]
    ran = {c["check_id"] for c in results["passed_checks"]}
    assert not ran & set(config_skips())


def test_production_passes_the_checks_only_defaults_and_the_test_pod_skip(
    tmp_path: Path,
) -> None:
    no_test_pod = tmp_path / "no-test-pod.yaml"
    no_test_pod.write_text("tests:\n  enabled: false\n")
    skip = [c for c in config_skips() if c not in PRODUCTION_PASSES]
    report = run_checkov(CHART_DIR / "ci/production-values.yaml", no_test_pod, skip=skip)
    assert report["summary"]["failed"] == 0, "\n".join(failures(report))
    passed = report["results"]["passed_checks"]
    app, job = "release-name-fastapi-app", "release-name-fastapi-app-migrate"
    # The probe checks apply to the Deployment only (checkov skips Jobs for them).
    where = {
        "CKV_K8S_43": {app, job},
        "CKV2_K8S_6": {app, job},
        "CKV_K8S_8": {app},
        "CKV_K8S_9": {app},
    }
    assert set(where) == PRODUCTION_PASSES
    for check_id, workloads in where.items():
        # CKV2_K8S_6 (a graph check) names the workloads' pods `Pod.<namespace>.<name>...`.
        names = {c["resource"].split(".")[2] for c in passed if c["check_id"] == check_id}
        assert names >= workloads, f"{check_id} did not run on {workloads - names}"


def test_every_skip_has_a_written_reason_and_none_is_on_the_objects() -> None:
    text = CONFIG.read_text()
    skips = config_skips()
    assert set(skips) >= PRODUCTION_PASSES and len(skips) == len(set(skips))
    readme = (CHART_DIR / "README.md").read_text()
    for check_id in skips:
        # The comment block right above the entry (or above the entry before it) is its reason.
        block = re.search(rf"((?:\n  #[^\n]*)+)(?:\n  - CKV[^\n]*)*\n  - {check_id}\n", text)
        assert block is not None, f"{check_id}: no comment with its reason above it"
        assert len(block.group(1)) > 60, check_id
        assert check_id in readme, f"{check_id} is skipped but not listed in the chart README"
    # The rendered objects carry no checkov annotation, whatever the values.
    for files in ([], [CHART_DIR / "ci/production-extensions-values.yaml"]):
        assert "checkov.io" not in render(files=files).stdout
    # The config stays out of the chart package.
    assert not (CHART_DIR / ".checkov.yaml").exists()
