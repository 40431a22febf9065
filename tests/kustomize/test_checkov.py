"""checkov's kubernetes checks find nothing in the renderings, with the skips of
deploy/checkov.yaml (the chart's list, each with its written reason, none on the objects)
only where a rendering needs them: the base with all of them; the overlays set a namespace
(CKV_K8S_21 runs) and have no helm test pod (the probe checks run); prod pins its image by
digest and has NetworkPolicies (CKV_K8S_43 and CKV2_K8S_6 run)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kustomize.building import KUSTOMIZE_DIR, OVERLAYS, rendering
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

CONFIG = REPO_ROOT / "deploy/checkov.yaml"
# The config's skips each scan runs anyway (they must pass there).
RUNS_ON_OVERLAYS = {"CKV_K8S_21", "CKV_K8S_8", "CKV_K8S_9"}
RUNS_ON_PROD = RUNS_ON_OVERLAYS | {"CKV_K8S_43", "CKV2_K8S_6"}


def config_skips() -> set[str]:
    return set(yaml.safe_load(CONFIG.read_text())["skip-check"])


def start_checkov(folder: Path, skip: set[str]) -> subprocess.Popen[str]:
    checkov = require_tool("checkov", "bash tools/install-checkov.sh")
    command = [checkov, "-d", str(folder), "--framework", "kubernetes", "--skip-download"]
    command += ["-o", "json"]
    if skip:
        command += ["--skip-check", ",".join(sorted(skip))]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )


def report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = proc.communicate(timeout=240)
    assert stdout.strip(), f"checkov printed nothing: {stderr}"
    data = json.loads(stdout)
    assert isinstance(data, dict), "expected one report (the kubernetes framework)"
    assert data["check_type"] == "kubernetes"
    return data


def failures(data: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['check_name']} on {c['resource']} ({Path(c['file_path']).name})"
        for c in data["results"]["failed_checks"]
    ]


def test_checkov_finds_no_failed_check(tmp_path: Path) -> None:
    skips = config_skips()
    assert skips >= RUNS_ON_PROD
    folders = {"base": ["base"], "dev": [n for n in OVERLAYS if n != "prod"], "prod": ["prod"]}
    assert folders["dev"], OVERLAYS
    runs: dict[str, set[str]] = {"base": set(), "dev": RUNS_ON_OVERLAYS, "prod": RUNS_ON_PROD}
    procs: dict[str, subprocess.Popen[str]] = {}
    for scan, names in folders.items():
        folder = tmp_path / scan
        folder.mkdir()
        for name in names:
            (folder / f"{name}.yaml").write_text(rendering(name).stdout)
        # The scans run side by side (checkov spends most of its time starting up).
        procs[scan] = start_checkov(folder, skips - runs[scan])
    reports = {scan: report(proc) for scan, proc in procs.items()}

    for data in reports.values():
        assert data["summary"]["failed"] == 0, "\n".join(failures(data))
        assert data["summary"]["parsing_errors"] == 0
        # Skipped by the command line, never by an annotation on an object.
        assert data["summary"]["skipped"] == 0
    # Everything really was scanned.
    assert reports["base"]["summary"]["resource_count"] >= 6, reports["base"]["summary"]
    overlays = sum(reports[s]["summary"]["resource_count"] for s in ("dev", "prod"))
    assert overlays >= 14
    assert reports["dev"]["summary"]["passed"] + reports["prod"]["summary"]["passed"] >= 150

    # The checks the config skips ran (and passed) where the rendering does not need the skip.
    for scan in ("dev", "prod"):
        passed = {c["check_id"] for c in reports[scan]["results"]["passed_checks"]}
        assert passed >= runs[scan], (scan, sorted(runs[scan] - passed))

    readme = (KUSTOMIZE_DIR / "README.md").read_text()
    for check_id in skips:
        assert check_id in readme, f"{check_id} not listed in deploy/kustomize/README.md"
    # No checkov annotation on any object, base or overlay.
    for name in ["base", *OVERLAYS]:
        assert "checkov.io" not in rendering(name).stdout, name
