"""The kustomize base never drifts from the chart: the committed base is exactly what
`make kustomize-base` generates from it, and every rendering (base, dev, prod) equals the
chart's rendering with the matching values on every field, after taking out only the
differences that are meant (see building.normalise)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kustomize.building import (
    EQUIVALENT_VALUES,
    OVERLAY_ONLY_LABELS,
    RENDERINGS,
    app_container,
    build,
    build_copy,
    chart,
    compare,
    copy_tree,
    helm,
    rendering,
)
from tools import kustomize_sync

pytestmark = pytest.mark.chart

Manifest = dict[str, Any]


def test_committed_base_is_what_the_chart_generates() -> None:
    diffs = kustomize_sync.stale(kustomize_sync.generate(helm()))
    assert not diffs, "run `make kustomize-base`:\n" + "".join(diffs)


def test_a_hand_edit_or_a_stray_file_in_the_base_is_caught(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    deployment = tree / "base/deployment.yaml"
    text = deployment.read_text()
    assert "terminationGracePeriodSeconds: 45" in text
    deployment.write_text(
        text.replace("terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 40")
    )
    (tree / "base/extra.yaml").write_text("{}\n")
    diffs = kustomize_sync.stale(kustomize_sync.generate(helm()), tree)
    joined = "".join(diffs)
    assert "base/deployment.yaml (committed)" in joined
    assert "-      terminationGracePeriodSeconds: 40" in joined
    assert "+      terminationGracePeriodSeconds: 45" in joined
    assert "base/extra.yaml: not generated" in joined
    # Regenerating puts it right again.
    kustomize_sync.write(kustomize_sync.generate(helm()), tree)
    assert kustomize_sync.stale(kustomize_sync.generate(helm()), tree) == []


def flatten(values: Any, prefix: str = "") -> set[str]:
    if isinstance(values, dict):
        return set().union(*(flatten(v, f"{prefix}{k}.") for k, v in values.items()))
    return {prefix.rstrip(".")}


def test_the_base_is_the_charts_default_rendering_but_for_five_documented_keys() -> None:
    """chart-values.yaml may only change what kustomize needs; each key is explained there."""
    values = yaml.safe_load(kustomize_sync.VALUES_FILE.read_text())
    assert flatten(values) == {
        "replicaCount",
        "migrations.useHelmHooks",
        "shutdown.preStopAction",
        "secret.existingSecret",
        "tests.enabled",
    }
    assert values["shutdown"]["preStopAction"] == "exec"
    assert values["tests"]["enabled"] is False
    assert values["migrations"]["useHelmHooks"] is False


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_rendering_equals_the_chart_with_the_same_values(name: str) -> None:
    ignore = OVERLAY_ONLY_LABELS if name != "base" else ()
    diffs = compare(chart(name), rendering(name).objects(), ignore)
    hint = f" (chart values: chart-values.yaml {' '.join(p.name for p in EQUIVALENT_VALUES[name])})"
    assert not diffs, f"{RENDERINGS[name]} drifted from the chart{hint}:\n" + "\n".join(diffs)


def test_overlays_leave_selectors_alone() -> None:
    """Overlay labels go on objects and pods, never into selectors (they are immutable)."""
    base = rendering("base").one("Deployment")["spec"]["selector"]
    for name in ("dev", "prod"):
        result = rendering(name)
        assert result.one("Deployment")["spec"]["selector"] == base
        assert result.one("Service")["spec"]["selector"] == base["matchLabels"]
        for pdb in result.find("PodDisruptionBudget"):
            assert pdb["spec"]["selector"] == base


def test_the_component_equals_the_charts_native_sleep_action(tmp_path: Path) -> None:
    """base + components/prestop-sleep-action is what the chart renders on Kubernetes 1.30+."""
    tree = copy_tree(tmp_path)
    (tree / "with-sleep").mkdir()
    (tree / "with-sleep/kustomization.yaml").write_text(
        "resources: [../base]\ncomponents: [../components/prestop-sleep-action]\n"
    )
    objects = build_copy(tree / "with-sleep").objects()
    expected = chart(kube_version="1.34.0", extra=("--set", "shutdown.preStopAction=auto"))
    assert compare(expected, objects) == []
    assert _app(objects)["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}


# -- The comparison itself sees drift in every field that matters -----------------------------


def _deployment(objects: list[Manifest]) -> Manifest:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment


def _pod(objects: list[Manifest]) -> Manifest:
    spec: Manifest = _deployment(objects)["spec"]["template"]["spec"]
    return spec


def _app(objects: list[Manifest]) -> Manifest:
    return app_container(_deployment(objects))


def _config(objects: list[Manifest]) -> dict[str, str]:
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    data: dict[str, str] = config["data"]
    return data


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    target[key] = value


MUTATIONS: dict[str, tuple[Callable[[list[Manifest]], None], str]] = {
    "readinessProbe": (
        lambda o: _set(_app(o)["readinessProbe"], "periodSeconds", 5),
        "readinessProbe.periodSeconds",
    ),
    "livenessProbe path": (
        lambda o: _set(_app(o)["livenessProbe"]["httpGet"], "path", "/health/ready"),
        "livenessProbe.httpGet.path",
    ),
    "startupProbe": (
        lambda o: _set(_app(o)["startupProbe"], "failureThreshold", 3),
        "startupProbe.failureThreshold",
    ),
    "preStop": (
        lambda o: _app(o)["lifecycle"]["preStop"]["exec"]["command"].__setitem__(-1, "1"),
        "lifecycle.preStop.exec.command[3]",
    ),
    "terminationGracePeriodSeconds": (
        lambda o: _set(_pod(o), "terminationGracePeriodSeconds", 30),
        "terminationGracePeriodSeconds",
    ),
    "GRACE_PERIOD_SECONDS": (
        lambda o: _set(_config(o), "GRACE_PERIOD_SECONDS", "20"),
        "data.GRACE_PERIOD_SECONDS",
    ),
    "other env": (lambda o: _set(_config(o), "WEB_CONCURRENCY", "4"), "data.WEB_CONCURRENCY"),
    "secret env": (
        lambda o: _set(_app(o)["env"][3]["valueFrom"]["secretKeyRef"], "optional", True),
        "env[3].valueFrom.secretKeyRef.optional",
    ),
    "shutdown env": (
        lambda o: _set(_app(o)["env"][0], "value", "29"),
        "env[0].value",
    ),
    "container securityContext": (
        lambda o: _set(_app(o)["securityContext"], "readOnlyRootFilesystem", False),
        "securityContext.readOnlyRootFilesystem",
    ),
    "pod securityContext": (
        lambda o: _set(_pod(o)["securityContext"], "runAsUser", 0),
        "spec.securityContext.runAsUser",
    ),
    "strategy": (
        lambda o: _set(_deployment(o)["spec"]["strategy"]["rollingUpdate"], "maxUnavailable", 1),
        "strategy.rollingUpdate.maxUnavailable",
    ),
    "pod labels": (
        lambda o: _set(
            _deployment(o)["spec"]["template"]["metadata"]["labels"],
            "app.kubernetes.io/component",
            "web",
        ),
        "template.metadata.labels.app.kubernetes.io/component",
    ),
    "selector": (
        lambda o: _set(_deployment(o)["spec"]["selector"]["matchLabels"], "tier", "api"),
        "selector.matchLabels.tier",
    ),
}


@pytest.mark.parametrize("field", list(MUTATIONS))
def test_the_comparison_catches_drift_in(field: str) -> None:
    mutate, path = MUTATIONS[field]
    objects = copy.deepcopy(build("base").objects())
    mutate(objects)
    diffs = compare(chart(), objects)
    assert any(path in d for d in diffs), f"{field} changed, but the comparison saw: {diffs}"
