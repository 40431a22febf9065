"""The rolling update across a schema change (tools/drill/migration.py), for real: the
previous release from git history and the current code behind HAProxy on PostgreSQL.

Upgrade (expand migration beside the load) and rollback must lose no request, and both
versions must have served in each; the control (a column rename without expand/contract)
must show failures, or the drill could not tell the two apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import missing, require_tool
from tools.drill.migration import PREVIOUS, PREVIOUS_RELEASE
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.drill


def migration_drill(tmp_path: Path, *args: str, timeout_s: float) -> tuple[int, dict[str, Any]]:
    haproxy = require_tool("haproxy", "Debian: apt-get install haproxy")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        missing("PostgreSQL server binaries (apt-get install postgresql)")
    known = subprocess.run(["git", "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
                           cwd=REPO_ROOT, capture_output=True, check=False)  # fmt: skip
    if known.returncode != 0:
        missing(f"the previous release {PREVIOUS_RELEASE[:12]} in git history (a full clone)")
    out = tmp_path / "drill.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.drill.migration", "--haproxy", haproxy,
         "--json", str(out), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    print(proc.stdout, proc.stderr, sep="\n")  # shown by pytest when an assertion fails
    assert out.exists(), f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(out.read_text())


@pytest.mark.timeout(600)
def test_upgrade_and_rollback_across_an_expand_migration_lose_no_request(
    tmp_path: Path,
) -> None:
    # Measured here: about 85 s for both phases at 100 req/s with 2 replicas.
    code, result = migration_drill(
        tmp_path, "--replicas", "2", "--rate", "100", "--duration", "10", timeout_s=540
    )
    assert result["migration"] == {"exit_code": 0, "applied": ["0002"]}
    upgrade, rollback = result["phases"]
    for phase in (upgrade, rollback):
        summary = phase["summary"]
        assert summary["failed"] == 0, summary["non_2xx"] | summary["error_details"]
        assert summary["sent"] >= 1000
        assert set(phase["by_version"]) == {PREVIOUS, "current"}, phase["by_version"]
        assert min(phase["by_version"].values()) > 0
    assert code == 0, result["problems"]  # includes the cross-version reads and row count


@pytest.mark.timeout(600)
def test_control_breaking_migration_shows_failures(tmp_path: Path) -> None:
    # Two replicas, as `make drill-migration-control` (three): the cross-version check runs
    # and must see the rename's failures, not count them against the control.
    # Measured here: about 80 s at 100 req/s, on 2 busy cores.
    code, result = migration_drill(
        tmp_path, "--control", "--replicas", "2", "--rate", "100", "--duration", "6",
        timeout_s=540,
    )  # fmt: skip
    assert result["control"] is True
    assert result["migration"]["applied"] == ["0002", "9001"]
    (upgrade,) = result["phases"]
    summary = upgrade["summary"]
    assert summary["failed"] >= 1
    assert set(summary["non_2xx"]) == {"503"}, summary["non_2xx"] | summary["error_details"]
    checked = [e for e in summary["events"] if e["name"] == "cross_version_checked"]
    assert [e["detail"] for e in checked] == [{"problems": 0}], checked
    # passes because item requests failed with the rename, and nothing else failed
    assert code == 0, result["problems"]
