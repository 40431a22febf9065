"""A new chart version with the same values changes no pod template (issue 26, item 6): the
Deployment's and the migration Job's pod templates carry only labels that change with what
runs (selector labels, the app version, user labels), never helm.sh/chart, so bumping the
chart rolls no pod and renames no plain migration Job. The objects' own labels keep it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import CHART_DIR, DEFAULT_KUBE_VERSION, RELEASE, Manifest, helm_binary

pytestmark = pytest.mark.chart

DB: Manifest = {
    "secret": {"databaseUrl": "postgresql://u:p@db:5432/app", "apiTokens": "t0ken=alice"}
}
PRODUCTION = CHART_DIR / "ci/production-values.yaml"
EXTENSIONS = CHART_DIR / "ci/production-extensions-values.yaml"
CASES: dict[str, tuple[list[Path], Manifest]] = {
    "default": ([], DB),
    "default-no-hooks": (
        [],
        {**DB, "migrations": {"useHelmHooks": False}, "tests": {"enabled": False}},
    ),
    "production": ([PRODUCTION], {}),
    "production-no-hooks": (
        [PRODUCTION],
        {"migrations": {"useHelmHooks": False}, "tests": {"enabled": False}},
    ),
    "production-extensions": ([PRODUCTION, EXTENSIONS], {}),
}


def bumped_chart(tmp_path: Path) -> Path:
    """A copy of the chart with a new `version` (appVersion, so the image, unchanged)."""
    chart = tmp_path / "fastapi-app"
    shutil.copytree(CHART_DIR, chart)
    meta = chart / "Chart.yaml"
    text = meta.read_text()
    assert "\nversion: 0.1.0\n" in text
    meta.write_text(text.replace("\nversion: 0.1.0\n", "\nversion: 7.8.9\n"))
    return chart


def render(chart: Path, files: list[Path], values: Manifest, tmp_path: Path) -> list[Manifest]:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    command = [helm_binary(), "template", RELEASE, str(chart)]
    command += ["--kube-version", DEFAULT_KUBE_VERSION]
    for file in [*files, values_file]:
        command += ["-f", str(file)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def workloads(objects: list[Manifest]) -> dict[str, Manifest]:
    found = {o["kind"]: o for o in objects if o["kind"] in {"Deployment", "Job"}}
    assert set(found) == {"Deployment", "Job"}, sorted(found)
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_chart_version_bump_changes_no_pod_template(case: str, tmp_path: Path) -> None:
    files, values = CASES[case]
    before = workloads(render(CHART_DIR, files, values, tmp_path))
    after = workloads(render(bumped_chart(tmp_path), files, values, tmp_path))
    for kind in ("Deployment", "Job"):
        # The bump took effect: the object's own labels name the new chart version.
        assert before[kind]["metadata"]["labels"]["helm.sh/chart"] == "fastapi-app-0.1.0"
        assert after[kind]["metadata"]["labels"]["helm.sh/chart"] == "fastapi-app-7.8.9"
        old = yaml.safe_dump(before[kind]["spec"]["template"], sort_keys=True)
        new = yaml.safe_dump(after[kind]["spec"]["template"], sort_keys=True)
        assert old == new, f"{kind}: the pod template changed with the chart version"
        assert "helm.sh/chart" not in before[kind]["spec"]["template"]["metadata"]["labels"]
    # Without hooks the Job's name hashes its spec: the same name, so no new Job runs.
    assert before["Job"]["metadata"]["name"] == after["Job"]["metadata"]["name"]


def test_the_pod_template_keeps_the_selector_the_app_version_and_user_labels(
    tmp_path: Path,
) -> None:
    objects = render(CHART_DIR, [PRODUCTION, EXTENSIONS], {}, tmp_path)
    pod = workloads(objects)["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert pod["app.kubernetes.io/name"] == "fastapi-app"
    assert pod["app.kubernetes.io/instance"] == RELEASE
    assert pod["app.kubernetes.io/version"] == "0.1.0"
    assert pod["tier"] == "api" and pod["cost-center"] == "4711"
