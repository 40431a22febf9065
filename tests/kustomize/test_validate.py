"""Every rendering (base, dev, prod) passes `kubernetes-validate --strict` for the oldest and
the newest Kubernetes we support; a WARN line is a failure. The native-sleep component is
valid from 1.30 on, and rejected by 1.28 (which is why the base uses `exec: sleep`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chart.rendering import Result
from tests.kustomize.building import KUBE_VERSIONS, RENDERINGS, build_copy, copy_tree, rendering
from tests.support import require_tool

pytestmark = pytest.mark.chart


def validate(kube_version: str, files: list[Path]) -> tuple[int, list[str], list[str]]:
    """(exit status, problem lines, passed lines) of kubernetes-validate --strict."""
    validator = require_tool("kubernetes-validate", "pip install kubernetes-validate")
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", kube_version, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    problems = [line for line in lines if not line.startswith("INFO ")]
    passed = [line for line in lines if line.startswith("INFO ") and " passed " in line]
    return proc.returncode, problems, passed


def write(tmp_path: Path, name: str, result: Result) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(result.stdout)
    return path


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_renderings_validate_strictly(kube_version: str, tmp_path: Path) -> None:
    results = {name: rendering(name) for name in RENDERINGS}
    files = [write(tmp_path, name, result) for name, result in results.items()]
    status, problems, passed = validate(kube_version, files)
    assert status == 0 and not problems, "\n".join(problems)
    # The validator passes an empty file: make sure it saw every object.
    assert len(passed) == sum(len(r.objects()) for r in results.values())


def with_component(tmp_path: Path) -> Path:
    tree = copy_tree(tmp_path)
    (tree / "check").mkdir()
    (tree / "check/kustomization.yaml").write_text(
        "resources: [../overlays/prod]\ncomponents: [../components/prestop-sleep-action]\n"
    )
    return write(tmp_path, "prod-sleep", build_copy(tree / "check"))


def test_the_sleep_component_validates_from_1_30_and_not_on_1_28(tmp_path: Path) -> None:
    rendered = with_component(tmp_path)
    for kube_version in ("1.30.0", "1.34.0"):
        status, problems, passed = validate(kube_version, [rendered])
        assert status == 0 and not problems, "\n".join(problems)
        assert passed
    status, problems, _ = validate("1.28.0", [rendered])
    assert status != 0 and any("'sleep' was unexpected" in line for line in problems), problems
