"""Issue 26: the chart renders the same objects however it is deployed. Argo CD renders with
`helm template` (with `--api-versions` of the cluster, or without), Flux's helm-controller
runs an install or upgrade, `kubectl apply` applies a render: reproduced here with
`helm template` (plus `--is-upgrade`, `--api-versions`) and helm v4's client-side
`helm install --dry-run=client`, which needs no cluster."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import (
    CHART_DIR,
    RELEASE,
    Manifest,
    helm_binary,
    render,
    render_error,
)
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

DB = {
    "secret": {"databaseUrl": "postgresql://u:p@db:5432/app", "apiTokens": "t0ken=alice"},
    "database": {"allowEmbeddedSqlite": False},
}
HPA = {**DB, "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}}


def install_dry_run(values: Manifest, chart: Path = CHART_DIR, *args: str) -> list[Manifest]:
    """Objects of helm v4's `helm install --dry-run=client` (hooks included), without a cluster."""
    body = install_output(values, chart, *args).split("NOTES:")[0]
    docs = [d for d in yaml.safe_load_all(body.split("HOOKS:", 1)[1]) if isinstance(d, dict)]
    return [d for d in docs if "kind" in d]


def install_output(values: Manifest, chart: Path = CHART_DIR, *args: str) -> str:
    """What helm v4's `helm install --dry-run=client` prints: hooks, manifest, NOTES."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        json.dump(values, handle)
        handle.flush()
        command = [helm_binary("helm4"), "install", RELEASE, str(chart), "--dry-run=client"]
        command += ["-f", handle.name, *args]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"KUBECONFIG": "/nonexistent", "PATH": "/usr/bin:/bin"},
        )
    assert proc.returncode == 0, proc.stderr
    # The hooks follow `HOOKS:`, then the manifest (`MANIFEST:`); NOTES close the output.
    return proc.stdout


def renderings(values: Manifest, args: Sequence[str] = ()) -> dict[str, list[Manifest]]:
    """The objects as Argo CD, Flux (install and upgrade) and kubectl apply would get them."""
    return {
        "helm template": render(values, args=args).objects(),
        "helm template --api-versions": render(
            values, args=("--api-versions", "monitoring.coreos.com/v1", *args)
        ).objects(),
        "helm template --is-upgrade": render(values, args=("--is-upgrade", *args)).objects(),
        "helm install --dry-run": install_dry_run(values, CHART_DIR, *args),
    }


def only(objects: list[Manifest], kind: str) -> Manifest:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


# --- 1. the HPA owns the pod count -----------------------------------------------------


def test_with_the_hpa_the_deployment_has_no_replicas_under_every_renderer() -> None:
    for how, objects in renderings(HPA).items():
        spec = only(objects, "Deployment")["spec"]
        assert "replicas" not in spec, f"{how}: replicas {spec.get('replicas')}"
        assert only(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 2
    # Without the HPA the count is replicaCount, as before.
    fixed = render({**DB, "replicaCount": 3}, args=("--is-upgrade",))
    assert fixed.one("Deployment")["spec"]["replicas"] == 3


# --- 2. the migration Job without helm hooks -------------------------------------------

NO_HOOKS: Manifest = {
    **DB,
    "replicaCount": 2,
    "migrations": {"useHelmHooks": False},
    "tests": {"enabled": False},
    "networkPolicy": {"enabled": True, "restrictEgress": True},
}


def migration_job(values: Manifest, args: Sequence[str] = ()) -> Manifest:
    return render(values, args=args).one("Job")


def test_without_helm_hooks_no_object_carries_a_hook_under_every_renderer() -> None:
    for how, objects in renderings(NO_HOOKS).items():
        hooked = [
            f"{o['kind']}/{o['metadata']['name']}"
            for o in objects
            if any(k.startswith("helm.sh/hook") for k in o["metadata"].get("annotations") or {})
        ]
        assert hooked == [], f"{how}: {hooked}"
        kinds = [o["kind"] for o in objects]
        assert kinds.count("Job") == 1 and kinds.count("NetworkPolicy") == 2, f"{how}: {kinds}"
    result = render(NO_HOOKS)
    job = result.one("Job")
    assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    # The Job reads the chart's Secret (no hook Secret), applied in the same wave.
    (env,) = [
        e
        for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "DATABASE_URL"
    ]
    assert env["valueFrom"]["secretKeyRef"]["name"] == "demo-fastapi-app"
    (secret,) = result.find("Secret")
    assert secret["metadata"]["name"] == "demo-fastapi-app"
    assert secret["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    policies = {p["metadata"]["name"]: p for p in result.find("NetworkPolicy")}
    wave = policies["demo-fastapi-app-migrate"]["metadata"]["annotations"]
    assert wave["argocd.argoproj.io/sync-wave"] == "-1"
    # The Deployment stays in wave 0 (no annotation), after the Job.
    assert "argocd.argoproj.io/sync-wave" not in (
        result.one("Deployment")["metadata"].get("annotations") or {}
    )
    # ttl null keeps the finished Job.
    kept = migration_job(
        {**NO_HOOKS, "migrations": {"useHelmHooks": False, "ttlSecondsAfterFinished": None}}
    )
    assert "ttlSecondsAfterFinished" not in kept["spec"]


def test_the_jobs_name_is_stable_for_the_same_values_and_changes_with_what_it_runs() -> None:
    first = migration_job(NO_HOOKS)["metadata"]["name"]
    assert re.fullmatch(r"demo-fastapi-app-migrate-[0-9a-f]{8}", first), first
    # Another helm process, another renderer: the same name (no drift in Argo CD).
    again = render(NO_HOOKS, args=("--is-upgrade",)).one("Job")["metadata"]["name"]
    assert again == first
    assert only(install_dry_run(NO_HOOKS), "Job")["metadata"]["name"] == first
    changed = {
        "image.tag": {**NO_HOOKS, "image": {"tag": "2.0.0"}},
        "migrations.activeDeadlineSeconds": {
            **NO_HOOKS,
            "migrations": {"useHelmHooks": False, "activeDeadlineSeconds": 200},
        },
        "extraEnv": {**NO_HOOKS, "extraEnv": [{"name": "X", "value": "1"}]},
    }
    for what, values in changed.items():
        assert migration_job(values)["metadata"]["name"] != first, what
    # A long release name still gives a valid name (63 characters at most).
    long_name = migration_job({**NO_HOOKS, "fullnameOverride": "x" * 63})["metadata"]["name"]
    assert len(long_name) <= 63 and re.fullmatch(r"x{46}-migrate-[0-9a-f]{8}", long_name)


def test_user_annotations_win_over_the_charts_on_the_job() -> None:
    values = {
        **NO_HOOKS,
        "migrations": {
            "useHelmHooks": False,
            "annotations": {"argocd.argoproj.io/sync-wave": "-5", "team": "db"},
        },
    }
    annotations = migration_job(values)["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/sync-wave"] == "-5"
    assert annotations["team"] == "db"
    hooked = {**DB, "migrations": {"annotations": {"helm.sh/hook-weight": "5"}}}
    hook_annotations = migration_job(hooked)["metadata"]["annotations"]
    assert hook_annotations["helm.sh/hook-weight"] == "5"
    assert hook_annotations["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_the_default_keeps_the_hook_job() -> None:
    job = migration_job(DB)
    assert job["metadata"]["name"] == "demo-fastapi-app-migrate"
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "ttlSecondsAfterFinished" not in job["spec"]


def test_without_helm_hooks_the_helm_test_pod_is_refused() -> None:
    error = render_error({**NO_HOOKS, "tests": {"enabled": True}})
    assert "migrations.useHelmHooks is false" in error and "tests.enabled" in error


# --- 3. ServiceMonitor and PrometheusRule whenever enabled --------------------------------

MONITORING: Manifest = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
}


def test_monitoring_objects_render_with_and_without_the_crds_under_every_renderer() -> None:
    for how, objects in renderings(MONITORING).items():
        kinds = [o["kind"] for o in objects]
        assert kinds.count("ServiceMonitor") == 1, how
        assert kinds.count("PrometheusRule") == 1, how
    rendered = renderings(MONITORING)
    assert only(rendered["helm template"], "ServiceMonitor") == only(
        rendered["helm template --api-versions"], "ServiceMonitor"
    )
    # Off: none, with the CRDs or without.
    assert "ServiceMonitor" not in [o["kind"] for o in rendered_kinds({})]


def rendered_kinds(values: Manifest) -> list[Manifest]:
    return render(values, args=("--api-versions", "monitoring.coreos.com/v1")).objects()


def test_notes_say_the_crds_are_the_clusters() -> None:
    notes = install_output(MONITORING).split("NOTES:", 1)[1]
    assert "ServiceMonitor and a PrometheusRule" in notes
    assert "installs no CRDs" in notes
    assert "installs no CRDs" not in install_output({}).split("NOTES:", 1)[1]


def test_monitoring_without_metrics_is_refused() -> None:
    error = render_error({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})
    assert "metrics.serviceMonitor.enabled is true but metrics.enabled is false" in error


# --- 6. the migration deadline sits below helm's timeout ----------------------------------


def helm_commands() -> dict[str, str]:
    """Every `helm install` / `helm upgrade` command line in docs/ and deploy/ (continuations
    joined): `file:line` -> command."""
    found: dict[str, str] = {}
    for path in sorted([*REPO_ROOT.glob("docs/**/*.md"), *REPO_ROOT.glob("deploy/**/*.md")]):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            text = line.strip().removeprefix("$ ")
            if not re.match(r"helm (install|upgrade) ", text):
                continue
            following = iter(lines[number + 1 :])
            while text.endswith("\\"):
                text = text[:-1] + next(following).strip()
            found[f"{path.relative_to(REPO_ROOT)}:{number + 1}"] = text
    return found


def seconds(duration: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_the_migration_deadline_is_below_helms_default_timeout_and_docs_pass_a_longer_one() -> None:
    deadline = render(DB).one("Job")["spec"]["activeDeadlineSeconds"]
    assert deadline == 240 and deadline < 300  # helm's default --timeout is 5m
    commands = helm_commands()
    assert len(commands) >= 3, commands
    for where, command in commands.items():
        match = re.search(r"--timeout[ =](\S+)", command)
        assert match, f"{where}: no --timeout in {command}"
        assert seconds(match[1]) > deadline, f"{where}: --timeout {match[1]} <= {deadline} s"
