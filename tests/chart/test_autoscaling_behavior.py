"""The HPA's behavior comes from autoscaling.behavior (issue 26, item 9); its default is what
the chart always rendered: at most one pod removed a minute, after scaleDownStabilizationSeconds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import Manifest, render, render_error

pytestmark = pytest.mark.chart

HPA: Manifest = {
    "autoscaling": {"enabled": True},
    "secret": {"databaseUrl": "postgresql://u:p@db:5432/app", "apiTokens": "t0ken=alice"},
}


def behavior(**autoscaling: Any) -> Manifest:
    values = {**HPA, "autoscaling": {"enabled": True, **autoscaling}}
    found: Manifest = render(values).one("HorizontalPodAutoscaler")["spec"]["behavior"]
    return found


def test_the_default_is_one_pod_a_minute_after_the_stabilization_window() -> None:
    assert behavior() == {
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        }
    }
    assert (
        behavior(scaleDownStabilizationSeconds=120)["scaleDown"]["stabilizationWindowSeconds"]
        == 120
    )


def test_behavior_is_rendered_from_values() -> None:
    scale_up = {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }
    got = behavior(
        behavior={
            "scaleUp": scale_up,
            "scaleDown": {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]},
        }
    )
    assert got["scaleUp"] == scale_up
    assert got["scaleDown"] == {
        "stabilizationWindowSeconds": 300,
        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
    }
    # Kubernetes' own scale-down policies, the chart's window.
    assert behavior(behavior={"scaleDown": {"policies": None}}) == {
        "scaleDown": {"stabilizationWindowSeconds": 300}
    }


def test_the_scale_down_window_has_one_source() -> None:
    values = {
        **HPA,
        "autoscaling": {
            "enabled": True,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}},
        },
    }
    error = render_error(values)
    assert "autoscaling.behavior.scaleDown.stabilizationWindowSeconds is set" in error
    assert "set autoscaling.scaleDownStabilizationSeconds instead" in error


@pytest.mark.parametrize(
    "bad",
    [
        {"scaleDown": {"policies": [{"type": "Pod", "value": 1, "periodSeconds": 60}]}},
        {"scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 60}]}},
        {"scaleUp": {"selectPolicy": "Maximum"}},
        {"scaledown": {}},
    ],
)
def test_the_schema_refuses_a_malformed_behavior(bad: Manifest) -> None:
    values = {**HPA, "autoscaling": {"enabled": True, "behavior": bad}}
    assert "don't meet the specifications of the schema" in render_error(values)
