"""renovate.json is valid for Renovate (its JSON schema, checked offline by
check-jsonschema) and every custom manager really finds what it is meant to update."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import require_tool
from tools import REPO_ROOT

CONFIG = REPO_ROOT / "renovate.json"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    checker = require_tool("check-jsonschema", "pip install check-jsonschema")
    return subprocess.run(
        [checker, "--builtin-schema", "vendor.renovate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_configuration_follows_renovates_schema(tmp_path: Path) -> None:
    result = validate(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = json.loads(CONFIG.read_text())
    broken["packageRules"][0]["groupName"] = ["not", "a", "string"]
    (tmp_path / "renovate.json").write_text(json.dumps(broken))
    assert validate(tmp_path / "renovate.json").returncode != 0  # the check can fail


def python_regex(pattern: str) -> re.Pattern[str]:
    """Renovate's (JavaScript) named groups in Python's spelling."""
    return re.compile(pattern.replace("(?<", "(?P<"))


@pytest.mark.parametrize(
    "manager",
    json.loads(CONFIG.read_text())["customManagers"],
    ids=lambda manager: manager["description"][:40],
)
def test_every_custom_manager_matches_in_every_file_it_names(manager: dict[str, object]) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    patterns = [python_regex(str(p).strip("/")) for p in manager["managerFilePatterns"]]  # type: ignore[attr-defined]
    files = [path for path in tracked if any(p.search(path) for p in patterns)]
    assert files, f"no file matches {manager['managerFilePatterns']}"
    for path in files:
        text = (REPO_ROOT / path).read_text()
        for match_string in manager["matchStrings"]:  # type: ignore[attr-defined]
            found = python_regex(match_string).search(text)
            assert found, f"{path}: {match_string} finds nothing to update"
            assert found.group("currentValue")
