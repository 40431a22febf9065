"""The release workflow pins every action by digest, and `make release-dry-run` does what
it would publish (image labels, the packaged chart, the SBOM) without pushing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import missing, require_tool
from tools import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github/workflows/release.yml"
PINNED = re.compile(r"uses: [\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")


def test_every_action_of_the_release_workflow_is_pinned_by_digest() -> None:
    uses = [line.strip().removeprefix("- ") for line in WORKFLOW.read_text().splitlines()
            if line.strip().removeprefix("- ").startswith("uses:")]  # fmt: skip
    assert uses
    unpinned = [line for line in uses if not PINNED.fullmatch(line)]
    assert not unpinned, unpinned


@pytest.mark.container
def test_release_dry_run(tmp_path: Path) -> None:
    require_tool("docker")
    if not (REPO_ROOT / ".tools/bin/helm").exists():
        missing("helm in .tools/bin (bash tools/install-helm.sh)")
    result = subprocess.run(
        ["make", "--no-print-directory", "release-dry-run", "STANDINS=1", f"DIST={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = (REPO_ROOT / "pyproject.toml").read_text().split('version = "')[1].split('"')[0]
    assert (tmp_path / f"fastapi-app-{version}.tgz").exists()
    sbom = json.loads((tmp_path / "sbom.cdx.json").read_text())
    assert sbom["metadata"]["component"]["version"] == version
    assert {"fastapi", "gunicorn", "uvicorn"} <= {c["name"] for c in sbom["components"]}
    print(result.stdout.strip().splitlines()[-1])
