"""checkov's kubernetes checks find nothing in the renderings; each skipped check carries a
written reason (an annotation on the object, generated from the chart's list) and is listed
in deploy/kustomize/README.md. The base alone is scanned without CKV_K8S_21 (see below)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.kustomize.building import KUSTOMIZE_DIR, OVERLAYS, rendering
from tests.support import require_tool
from tools.kustomize_sync import SKIP_REASONS
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

# Skipped only when scanning the base by itself, with this reason:
BASE_ONLY_SKIPS = {
    "CKV_K8S_21": "The base has no namespace on purpose: it is never applied alone, and each"
    " overlay sets one (the overlays are scanned with this check on).",
}
# checkov skips the chart keeps and the overlays must pass instead.
PROD_PASSES = {"CKV_K8S_43", "CKV2_K8S_6"}


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
    base_dir, overlay_dir = tmp_path / "base", tmp_path / "overlays"
    base_dir.mkdir()
    overlay_dir.mkdir()
    (base_dir / "base.yaml").write_text(rendering("base").stdout)
    for name in OVERLAYS:
        (overlay_dir / f"{name}.yaml").write_text(rendering(name).stdout)
    # The two scans run side by side (checkov spends most of its time starting up).
    base_proc = start_checkov(base_dir, set(BASE_ONLY_SKIPS))
    overlay_proc = start_checkov(overlay_dir, set())
    base, overlays = report(base_proc), report(overlay_proc)

    for data in (base, overlays):
        assert data["summary"]["failed"] == 0, "\n".join(failures(data))
        assert data["summary"]["parsing_errors"] == 0
    # Everything really was scanned.
    assert base["summary"]["resource_count"] >= 6, base["summary"]
    assert overlays["summary"]["resource_count"] >= 14, overlays["summary"]
    assert overlays["summary"]["passed"] >= 150, overlays["summary"]

    readme = (KUSTOMIZE_DIR / "README.md").read_text()
    for data in (base, overlays):
        for check in data["results"]["skipped_checks"]:
            assert check["check_id"] in SKIP_REASONS, check["check_id"]
            reason = check["check_result"].get("suppress_comment", "")
            assert reason == SKIP_REASONS[check["check_id"]], check
            assert check["check_id"] in readme, f"{check['check_id']} not listed in the README"
    for check_id in BASE_ONLY_SKIPS:
        assert check_id in readme

    # The namespace check runs (and passes) on every overlay object it applies to.
    passed = overlays["results"]["passed_checks"]
    assert any(c["check_id"] == "CKV_K8S_21" for c in passed)
    # prod pins its image by digest and has a NetworkPolicy: those checks pass there, unskipped.
    prod_passed = {c["check_id"] for c in passed if Path(c["file_path"]).name == "prod.yaml"}
    prod_skipped = {
        c["check_id"]
        for c in overlays["results"]["skipped_checks"]
        if Path(c["file_path"]).name == "prod.yaml"
    }
    assert prod_passed >= PROD_PASSES and not prod_skipped & PROD_PASSES
