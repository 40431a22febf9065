"""The shutdown arithmetic holds in the base, every overlay and the preStop component:
terminationGracePeriodSeconds T >= preStop P + grace G + cleanup C + the 5 s margin with the
chart's numbers, and the app is told G and C (GRACE_PERIOD_SECONDS, SHUTDOWN_CLEANUP_SECONDS,
in the pod spec beside T).
The generator carries any numbers the chart is given, not only the defaults (property test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.chart.rendering import Result
from tests.kustomize.building import (
    RENDERINGS,
    app_container,
    build_copy,
    chart_defaults,
    copy_tree,
    helm,
    referenced_config,
    rendering,
)
from tools import kustomize_sync

pytestmark = pytest.mark.chart

# The chart's schema sets the floor of C (the app's cleanup budget); follow it.
_SCHEMA = json.loads((kustomize_sync.CHART_DIR / "values.schema.json").read_text())
MIN_CLEANUP_SECONDS = int(
    _SCHEMA["properties"]["shutdown"]["properties"]["cleanupSeconds"]["minimum"]
)

# Variables that steer the drain: set in the pod spec beside T, never in the ConfigMap (a
# ConfigMap is shared by old and new pods; each pod must run the G of its own T).
SHUTDOWN_ENV = {
    "GRACE_PERIOD_SECONDS",
    "SHUTDOWN_CLEANUP_SECONDS",
    "SHUTDOWN_DELAY_SECONDS",
    "RETRY_AFTER_SECONDS",
}
# After P + G + C (the chart's fastapi-app.shutdownMarginSeconds).
MARGIN = 5


def timeline(result: Result) -> tuple[int, int, int, int, int]:
    """(P, G, C, T, delay) as the rendering carries them."""
    (deployment,) = result.find("Deployment")
    container = app_container(deployment)
    pre_stop = container.get("lifecycle", {}).get("preStop")
    if pre_stop is None:
        p = 0
    elif "sleep" in pre_stop:
        p = int(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        # The image has no `sleep` binary: its Python sleeps the last argument's seconds.
        assert command[:2] == ["python", "-c"] and "time.sleep" in command[2], command
        p = int(command[-1])
    in_config = set(referenced_config(result)) & SHUTDOWN_ENV
    assert not in_config, f"the ConfigMap carries {in_config}: they belong in the pod spec"
    env = kustomize_sync.pod_env(deployment)
    t = int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    g, c = int(env["GRACE_PERIOD_SECONDS"]), int(env["SHUTDOWN_CLEANUP_SECONDS"])
    return p, g, c, t, int(env["SHUTDOWN_DELAY_SECONDS"])


def chart_numbers() -> dict[str, int]:
    """P, G, C from the chart's values.yaml; T as the chart computes it (no override)."""
    shutdown = chart_defaults()["shutdown"]
    numbers = {
        "P": int(shutdown["preStopSeconds"]),
        "G": int(shutdown["gracePeriodSeconds"]),
        "C": int(shutdown["cleanupSeconds"]),
    }
    numbers["T"] = numbers["P"] + numbers["G"] + numbers["C"] + MARGIN
    return numbers


def with_component(tmp_path: Path, overlay: str) -> Result:
    tree = copy_tree(tmp_path)
    (tree / "check").mkdir()
    (tree / "check/kustomization.yaml").write_text(
        f"resources: [../{overlay}]\ncomponents: [../components/prestop-sleep-action]\n"
    )
    return build_copy(tree / "check")


def check(result: Result, want: dict[str, int]) -> None:
    p, g, c, t, delay = timeline(result)
    assert t >= p + g + c + MARGIN, f"T={t} < P+G+C+{MARGIN} = {p}+{g}+{c}+{MARGIN}"
    assert (p, g, c, t) == (want["P"], want["G"], want["C"], want["T"])
    assert delay <= g


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_shutdown_arithmetic_with_the_charts_numbers(name: str) -> None:
    check(rendering(name), chart_numbers())


@pytest.mark.parametrize("overlay", list(RENDERINGS.values()))
def test_shutdown_arithmetic_with_the_native_sleep_component(overlay: str, tmp_path: Path) -> None:
    result = with_component(tmp_path, overlay)
    check(result, chart_numbers())
    pre_stop = app_container(result.one("Deployment"))["lifecycle"]["preStop"]
    assert pre_stop == {"sleep": {"seconds": chart_numbers()["P"]}}


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    p=st.integers(0, 120),
    g=st.integers(0, 300),
    c=st.integers(MIN_CLEANUP_SECONDS, 60),
    t_extra=st.one_of(st.none(), st.integers(0, 60)),
)
@example(p=0, g=0, c=MIN_CLEANUP_SECONDS, t_extra=None)
@example(p=10, g=60, c=10, t_extra=20)
def test_the_generator_carries_any_shutdown_numbers(
    p: int, g: int, c: int, t_extra: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever P, G, C (and T override) the chart is given, the generated base carries them."""
    tmp = tmp_path_factory.mktemp("numbers")
    t = None if t_extra is None else p + g + c + MARGIN + t_extra
    values: dict[str, Any] = {
        "shutdown": {"preStopSeconds": p, "gracePeriodSeconds": g, "cleanupSeconds": c},
        "terminationGracePeriodSeconds": t,
    }
    values_file = tmp / "numbers.yaml"
    values_file.write_text(yaml.safe_dump(values))
    files = kustomize_sync.generate(helm(), (kustomize_sync.VALUES_FILE, values_file))
    tree = copy_tree(tmp)
    kustomize_sync.write(files, tree)
    want = {"P": p, "G": g, "C": c, "T": p + g + c + MARGIN if t is None else t}
    check(build_copy(tree / "base"), want)
    (tree / "check").mkdir()
    (tree / "check/kustomization.yaml").write_text(
        "resources: [../overlays/prod]\ncomponents: [../components/prestop-sleep-action]\n"
    )
    check(build_copy(tree / "check"), want)
