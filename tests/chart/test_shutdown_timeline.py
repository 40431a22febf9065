"""The shutdown numbers: every rendering keeps T >= P + G + C + the 5 s margin, passes G and C
to the app and sleeps P seconds in preStop in the form the cluster supports, or fails with the
documented message.

Property-based over P, G, C, the T override, the drain delay, the preStop form and the
Kubernetes version; each example is one real `helm template` run.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.chart.rendering import Result, render, render_error, supports_sleep_action, template

pytestmark = pytest.mark.chart

# Each example costs one helm run (~0.1 s): enough to explore, cheap enough for CI.
HELM_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Versions as clusters report them, with the vendor suffixes that need `-0` in semverCompare.
kube_versions = st.sampled_from(
    [
        "1.28.0",
        "1.29.9",
        "v1.29.15-gke.1000",
        "1.30.0",
        "v1.30.2-eks-4f4795d",
        "1.31.4",
        "1.32.0",
        "1.33.1",
        "1.34.0",
    ]
)
seconds = st.one_of(st.integers(0, 120), st.sampled_from([0, 1, 3599, 3600]))
cleanup_seconds = st.one_of(st.integers(1, 60), st.sampled_from([1, 300]))
# After P + G + C: Gunicorn's own 2 s, the master's exit, native sidecars' stop.
MARGIN = 5


def ceil_percent(value: int | str, pods: int) -> int:
    """An int-or-percentage as the disruption controller scales it: percentages rounded up."""
    if isinstance(value, str):
        return -(-int(value.rstrip("%")) * pods // 100)
    return value


def allowed_evictions(
    min_available: int | str | None, max_unavailable: int | str, pods: int
) -> int:
    if min_available is not None:
        return pods - ceil_percent(min_available, pods)
    return ceil_percent(max_unavailable, pods)


SLEEP_CODE = "import sys, time; time.sleep(float(sys.argv[1]))"


def expected_prestop(p: int, form: str, kube_version: str) -> dict[str, Any] | None:
    if p == 0:
        return None
    native = form == "sleepAction" or (form == "auto" and supports_sleep_action(kube_version))
    if native:
        return {"sleep": {"seconds": p}}
    # The image has no `sleep` binary (no coreutils): its Python sleeps.
    return {"exec": {"command": ["python", "-c", SLEEP_CODE, str(p)]}}


def t_message(t: int, p: int, g: int, c: int) -> str:
    total = p + g + c + MARGIN
    return (
        f"terminationGracePeriodSeconds ({t}) is below shutdown.preStopSeconds + "
        f"shutdown.gracePeriodSeconds + shutdown.cleanupSeconds + {MARGIN} s margin = "
        f"{p} + {g} + {c} + {MARGIN} = {total}, "
        "so the kubelet would kill the app before it has drained and cleaned up: set "
        f"terminationGracePeriodSeconds to at least {total}, lower the shutdown numbers, or "
        "leave it null to have it computed"
    )


def check_timeline(result: Result, p: int, g: int, c: int, d: int, t: int | None) -> None:
    pod = result.pod_spec()
    rendered_t = pod["terminationGracePeriodSeconds"]
    assert rendered_t >= p + g + c + MARGIN
    assert rendered_t == (p + g + c + MARGIN if t is None else t)
    # G and C sit in the pod spec beside T, so every pod runs the G and C of its own T (a
    # ConfigMap is shared by the old and the new pods of a rollout); the ConfigMap never
    # carries them.
    env = result.pod_env()
    assert env["GRACE_PERIOD_SECONDS"] == str(g)
    assert env["SHUTDOWN_CLEANUP_SECONDS"] == str(c)
    assert env["SHUTDOWN_DELAY_SECONDS"] == str(d)
    shutdown_env = {"GRACE_PERIOD_SECONDS", "SHUTDOWN_CLEANUP_SECONDS", "SHUTDOWN_DELAY_SECONDS"}
    assert not shutdown_env & set(result.config())


@HELM_SETTINGS
@given(
    p=seconds,
    g=seconds,
    c=cleanup_seconds,
    t_offset=st.one_of(st.none(), st.integers(-30, 30)),
    delay=st.integers(0, 130),
    form=st.sampled_from(["auto", "auto", "sleepAction", "exec"]),
    kube_version=kube_versions,
)
@example(p=5, g=30, c=5, t_offset=None, delay=0, form="auto", kube_version="1.30.0")
@example(p=5, g=30, c=5, t_offset=-1, delay=0, form="auto", kube_version="1.29.9")
@example(p=0, g=0, c=1, t_offset=0, delay=0, form="exec", kube_version="1.28.0")
@example(p=10, g=20, c=1, t_offset=None, delay=21, form="auto", kube_version="1.34.0")
@example(p=5, g=30, c=300, t_offset=-5, delay=0, form="auto", kube_version="1.33.1")
def test_every_rendering_covers_the_timeline_or_fails_with_the_documented_message(
    p: int,
    g: int,
    c: int,
    t_offset: int | None,
    delay: int,
    form: str,
    kube_version: str,
) -> None:
    t = None if t_offset is None else max(1, p + g + c + MARGIN + t_offset)
    values: dict[str, Any] = {
        "shutdown": {
            "preStopSeconds": p,
            "gracePeriodSeconds": g,
            "cleanupSeconds": c,
            "delaySeconds": delay,
            "preStopAction": form,
        },
        "terminationGracePeriodSeconds": t,
    }
    if t is not None and t < p + g + c + MARGIN:
        assert t_message(t, p, g, c) in render_error(values, kube_version=kube_version)
        return
    native_missing = p > 0 and form == "sleepAction" and not supports_sleep_action(kube_version)
    if delay > g or native_missing:
        message = render_error(values, kube_version=kube_version)
        if delay > g:
            assert f"shutdown.delaySeconds ({delay}) exceeds shutdown.gracePeriodSeconds ({g})" in (
                message
            )
        if native_missing:
            assert "shutdown.preStopAction is sleepAction, which needs Kubernetes 1.30" in message
        return
    result = render(values, kube_version=kube_version)
    check_timeline(result, p, g, c, delay, t)
    lifecycle = result.app_container().get("lifecycle")
    want = expected_prestop(p, form, kube_version)
    assert (lifecycle or {}).get("preStop") == want


@HELM_SETTINGS
@given(
    replicas=st.integers(0, 5),
    autoscaling=st.booleans(),
    min_replicas=st.integers(1, 5),
    max_replicas=st.integers(1, 8),
    pdb_min_available=st.one_of(st.none(), st.integers(0, 6), st.sampled_from(["50%", "100%"])),
    pdb_max_unavailable=st.one_of(st.integers(0, 3), st.sampled_from(["0%", "25%"])),
    readiness=st.fixed_dictionaries(
        {"periodSeconds": st.integers(1, 30), "failureThreshold": st.integers(1, 10)}
    ),
    max_surge=st.sampled_from([0, 1, 2, "25%"]),
    max_unavailable=st.sampled_from([0, 1, "0%", "25%"]),
    g=st.integers(0, 300),
)
def test_overrides_keep_the_shutdown_numbers_and_never_block_a_drain(
    replicas: int,
    autoscaling: bool,
    min_replicas: int,
    max_replicas: int,
    pdb_min_available: int | str | None,
    pdb_max_unavailable: int | str,
    readiness: dict[str, int],
    max_surge: int | str,
    max_unavailable: int | str,
    g: int,
) -> None:
    """Random overrides elsewhere in the values: the timeline still holds, the PDB is never
    one that blocks a node drain, or the chart says which value to change."""
    values: dict[str, Any] = {
        "replicaCount": replicas,
        "autoscaling": {
            "enabled": autoscaling,
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
        },
        "podDisruptionBudget": {
            "minAvailable": pdb_min_available,
            "maxUnavailable": pdb_max_unavailable,
        },
        "readinessProbe": readiness,
        "rollout": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
        "shutdown": {"gracePeriodSeconds": g},
        "secret": {"databaseUrl": "postgresql://u:p@db:5432/app", "apiTokens": "t0ken=alice"},
    }
    pods = min_replicas if autoscaling else replicas
    result = template(values)
    if not result.ok:
        allowed = [
            "rollout.maxSurge and rollout.maxUnavailable are both 0",
            "autoscaling.minReplicas",
            "which would block node drains",
        ]
        assert any(text in result.stderr for text in allowed), result.stderr
        zero = {0, "0%"}
        blocks = allowed_evictions(pdb_min_available, pdb_max_unavailable, pods) <= 0
        assert (
            (max_surge in zero and max_unavailable in zero)
            or (autoscaling and min_replicas > max_replicas)
            or (pods > 0 and blocks)
        ), result.stderr
        return
    check_timeline(result, 5, g, 5, 0, None)
    probe = result.app_container()["readinessProbe"]
    assert probe["periodSeconds"] == readiness["periodSeconds"]
    assert probe["failureThreshold"] == readiness["failureThreshold"]
    assert probe["httpGet"]["path"] == "/health/ready"
    # Rendered whatever the pod count (issue 26); with no pod there is nothing to evict.
    (pdb,) = result.find("PodDisruptionBudget")
    if pods == 0:
        return
    spec = pdb["spec"]
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # Exactly as the disruption controller computes it: at least one eviction is allowed.
    assert allowed_evictions(spec.get("minAvailable"), spec.get("maxUnavailable", 0), pods) >= 1
