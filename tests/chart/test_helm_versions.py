"""The chart renders byte for byte the same with helm v3 and helm v4, failures included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chart.rendering import CI_VALUES, KUBE_VERSIONS, ci_kube_versions, template

pytestmark = pytest.mark.chart


def same_output(values: dict[str, Any] | None = None, **kwargs: Any) -> None:
    v3 = template(values, helm="helm", **kwargs)
    v4 = template(values, helm="helm4", **kwargs)
    assert v3.returncode == v4.returncode, (v3.stderr, v4.stderr)
    assert v3.stdout == v4.stdout
    if not v3.ok:
        assert v3.stderr == v4.stderr


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_ci_variants_render_identically(values_file: Path) -> None:
    for kube_version in ci_kube_versions(values_file):
        same_output(files=[values_file], kube_version=kube_version)


@pytest.mark.parametrize(
    "values",
    [
        {"terminationGracePeriodSeconds": 1},
        {"readinessProbe": {"periodSecond": 3}},
        {"shutdown": {"gracePeriodSeconds": -1}},
        {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}},
    ],
    ids=["T too low", "unknown key", "negative grace", "service monitor"],
)
def test_failures_and_optional_objects_render_identically(values: dict[str, Any]) -> None:
    same_output(values)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    p=st.integers(0, 60),
    g=st.integers(0, 120),
    c=st.integers(1, 30),
    kube_version=st.sampled_from(KUBE_VERSIONS),
    autoscaling=st.booleans(),
)
def test_random_values_render_identically(
    p: int, g: int, c: int, kube_version: str, autoscaling: bool
) -> None:
    values = {
        "shutdown": {"preStopSeconds": p, "gracePeriodSeconds": g, "cleanupSeconds": c},
        "autoscaling": {"enabled": autoscaling},
    }
    same_output(values, kube_version=kube_version)
