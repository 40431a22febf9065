"""helm lint --strict on every ci/*.yaml values file, and every rendered variant validated
by kubernetes-validate --strict for each supported Kubernetes version (a WARN is a failure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import (
    CHART_DIR,
    CI_VALUES,
    KUBE_VERSIONS,
    ci_kube_versions,
    helm_binary,
    render,
    supports_sleep_action,
)
from tests.support import require_tool

pytestmark = pytest.mark.chart

# Custom resources kubernetes-validate has no schema for (it would only WARN): checked by
# the rendering tests instead, and kept out of the ci/ variants.
CRD_GROUPS = ("monitoring.coreos.com/", "gateway.networking.k8s.io/")
EXPECTED_VARIANTS = {
    "default",
    "production",
    "pdb",
    "ingress",
    "networkpolicy",
    "existing-secret",
    "kube-1.28",
    "kube-1.34",
    "production-extensions",
    "native-sidecar",
    "gitops",
    "migrations-extensions",
}


def variant(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def test_the_ci_variants_are_all_there() -> None:
    assert {variant(p) for p in CI_VALUES} == EXPECTED_VARIANTS


@pytest.mark.parametrize("values_file", CI_VALUES, ids=variant)
def test_helm_lint_strict(values_file: Path) -> None:
    helm = helm_binary()
    for kube_version in ci_kube_versions(values_file):
        proc = subprocess.run(
            [
                helm,
                "lint",
                "--strict",
                str(CHART_DIR),
                "-f",
                str(values_file),
                "--kube-version",
                kube_version,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_values_files_pass_yamllint() -> None:
    yamllint = require_tool("yamllint", "pip install yamllint (requirements-dev.txt)")
    # values.yaml: a `## @param key description` line cannot be wrapped (readme-generator).
    config = (
        "{extends: default, rules: {document-start: disable,"
        " comments: {min-spaces-from-content: 1},"
        f" line-length: {{max: 120, ignore: [{CHART_DIR / 'values.yaml'}]}}}}}}"
    )
    files = [CHART_DIR / "values.yaml", CHART_DIR / "Chart.yaml", *CI_VALUES]
    proc = subprocess.run(
        [yamllint, "--strict", "-d", config, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_variants_validate_strictly(kube_version: str, tmp_path: Path) -> None:
    validator = require_tool("kubernetes-validate", "pip install kubernetes-validate")
    files: list[Path] = []
    for values_file in CI_VALUES:
        if kube_version not in ci_kube_versions(values_file):
            continue
        docs = render(files=[values_file], kube_version=kube_version).objects()
        docs = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
        out = tmp_path / f"{variant(values_file)}.yaml"
        out.write_text(yaml.safe_dump_all(docs))
        files.append(out)
    assert len(files) >= 6
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", kube_version, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    problems = [line for line in lines if not line.startswith("INFO ")]
    assert proc.returncode == 0 and not problems, "\n".join(problems)
    passed = [line for line in lines if line.startswith("INFO ") and " passed " in line]
    assert len(passed) >= 6 * 6, "kubernetes-validate checked fewer objects than rendered"
    # The preStop form the validator accepted is the one this version supports.
    expected = "sleep" if supports_sleep_action(kube_version) else "exec"
    default = render(kube_version=kube_version).app_container()["lifecycle"]["preStop"]
    assert list(default) == [expected]


def test_kube_version_floor_is_declared() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.28.0-0"
    assert chart["appVersion"]
    helm = helm_binary()
    proc = subprocess.run(
        [helm, "template", "x", str(CHART_DIR), "--kube-version", "1.27.9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr, proc.stderr


def test_the_validator_is_strict(tmp_path: Path) -> None:
    """Guard against a validator that passes everything: a misspelt field must be an ERROR."""
    validator = require_tool("kubernetes-validate", "pip install kubernetes-validate")
    deployment = render().one("Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    proc = subprocess.run(
        [validator, "--strict", "--kubernetes-version", "1.30.0", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "terminationGracePeriodSecond" in proc.stdout + proc.stderr
