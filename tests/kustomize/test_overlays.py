"""What each overlay promises: dev (one pod, debug logs, small requests) and prod (HPA from
3 pods, PDB, NetworkPolicy, production requests, image pinned by digest); both with their
namespace, `images:`, and generators whose name hash rolls the pods on a config change."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import SettingsError, load_settings
from tests.chart.rendering import Result
from tests.kustomize.building import (
    KUSTOMIZE_DIR,
    OVERLAYS,
    app_container,
    build_copy,
    copy_tree,
    referenced_config,
    rendering,
)
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

NAMESPACES = {"dev": "fastapi-app-dev", "prod": "fastapi-app"}
CLUSTER_SCOPED = {"Namespace"}
SECRET_KEYS = {"DATABASE_URL", "REDIS_URL", "ADMIN_TOKEN", "API_TOKENS"}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Fields kustomize deprecated (kustomize edit fix rewrites them).
DEPRECATED_FIELDS = {
    "commonLabels",
    "bases",
    "patchesStrategicMerge",
    "patchesJson6902",
    "vars",
    "imageTags",
}


def quantity(value: str) -> float:
    """CPU (cores) or memory (bytes) of a Kubernetes quantity such as 500m, 2, 384Mi."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def resources(result: Result) -> dict[str, dict[str, float]]:
    raw = app_container(result.one("Deployment"))["resources"]
    return {kind: {k: quantity(str(v)) for k, v in raw[kind].items()} for kind in raw}


def kustomizations() -> list[Path]:
    return sorted(KUSTOMIZE_DIR.rglob("kustomization.yaml"))


@pytest.mark.parametrize(
    "path", kustomizations(), ids=lambda p: str(p.parent.relative_to(KUSTOMIZE_DIR))
)
def test_no_deprecated_kustomize_fields(path: Path) -> None:
    fields = set(yaml.safe_load(path.read_text()))
    assert not fields & DEPRECATED_FIELDS, f"{path}: use labels/resources/patches instead"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_sets_namespace_images_generators_and_labels(overlay: str) -> None:
    kustomization = yaml.safe_load(
        (KUSTOMIZE_DIR / f"overlays/{overlay}/kustomization.yaml").read_text()
    )
    assert kustomization["namespace"] == NAMESPACES[overlay]
    assert [i["name"] for i in kustomization["images"]] == ["fastapi-app"]
    assert kustomization["configMapGenerator"][0]["behavior"] == "merge"
    assert kustomization["secretGenerator"][0]["behavior"] == "merge"
    (labels,) = kustomization["labels"]
    assert labels["pairs"] == {"environment": overlay}
    assert labels.get("includeSelectors", False) is False
    result = rendering(overlay)
    for obj in result.objects():
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        assert obj["metadata"]["namespace"] == NAMESPACES[overlay], obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["environment"] == overlay
    pod_labels = result.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["environment"] == overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_app_reads_the_generated_config_map_and_secret(overlay: str) -> None:
    result = rendering(overlay)
    (config,) = result.find("ConfigMap")
    (secret,) = result.find("Secret")
    container = app_container(result.one("Deployment"))
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(refs) == SECRET_KEYS
    for key, ref in refs.items():
        # DATABASE_URL is never optional: without it the pod stops instead of running on a
        # pod-local SQLite file. API_TOKENS neither (the chart's auth.allowAnonymousWrites is
        # false): an overlay states its tokens, empty for anonymous writes. Others may be left out.
        optional = key not in ("DATABASE_URL", "API_TOKENS")
        assert ref == {"name": secret["metadata"]["name"], "key": key, "optional": optional}
    # Each overlay names its database: prod leaves it for the pipeline, dev names SQLite.
    assert "DATABASE_URL" in (secret.get("data") or {})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_config_or_secret_change_rolls_the_pods(overlay: str, tmp_path: Path) -> None:
    """A new value renames the generated object (content hash), so the pod template changes."""
    before = app_container(rendering(overlay).one("Deployment"))
    tree = copy_tree(tmp_path)
    folder = tree / "overlays" / overlay
    kustomization = folder / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    generator = data["configMapGenerator"][0]
    generator["literals"] = [*generator.get("literals", []), "SLOW_REQUEST_MS=750"]
    kustomization.write_text(yaml.safe_dump(data))
    after_config = build_copy(folder)
    assert referenced_config(after_config)["SLOW_REQUEST_MS"] == "750"
    config_changed = app_container(after_config.one("Deployment"))
    assert config_changed["envFrom"] != before["envFrom"]
    assert config_changed["env"] == before["env"]

    secrets = folder / "secrets.env"
    kept = [x for x in secrets.read_text().splitlines() if not x.startswith("ADMIN_TOKEN=")]
    secrets.write_text("\n".join([*kept, "ADMIN_TOKEN=rotated", ""]))
    secret_changed = app_container(build_copy(folder).one("Deployment"))
    assert secret_changed["envFrom"] == config_changed["envFrom"]
    names = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in secret_changed["env"] if "valueFrom" in e
    }
    old_names = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in config_changed["env"] if "valueFrom" in e
    }
    assert len(names) == 1 and names != old_names


def test_dev_runs_one_pod_with_debug_logs_and_small_requests() -> None:
    dev, base = rendering("dev"), rendering("base")
    deployment = dev.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    config = referenced_config(dev)
    assert config["LOG_LEVEL"] == "debug"
    assert config["WEB_CONCURRENCY"] == "1"
    # Like the chart: the base's PodDisruptionBudget, maxUnavailable 1, lets the one pod go.
    assert dev.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert dev.find("HorizontalPodAutoscaler") == [] and dev.find("NetworkPolicy") == []
    dev_res, base_res = resources(dev), resources(base)
    for name in ("cpu", "memory"):
        assert dev_res["requests"][name] < base_res["requests"][name]
        assert dev_res["limits"][name] >= dev_res["requests"][name]
    assert app_container(deployment)["image"] == "fastapi-app:local"
    (namespace,) = dev.find("Namespace")
    assert namespace["metadata"]["name"] == NAMESPACES["dev"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_prod_autoscales_from_three_pods_behind_a_pdb_and_a_network_policy() -> None:
    prod, base = rendering("prod"), rendering("base")
    deployment = prod.one("Deployment")
    # The HPA owns the pod count: a replicas field would be reset by every apply.
    assert "replicas" not in deployment["spec"]
    hpa = prod.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] >= 3
    pdb = prod.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    # One pod of at least three may go at a time: a node drain always proceeds.
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    policies = {p["metadata"]["name"]: p for p in prod.find("NetworkPolicy")}
    assert set(policies) == {"fastapi-app", "fastapi-app-migrate"}
    policy = policies["fastapi-app"]
    assert policy["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == ["http"]
    prod_res, base_res = resources(prod), resources(base)
    for kind in ("requests", "limits"):
        for name in ("cpu", "memory"):
            assert prod_res[kind][name] >= base_res[kind][name]
    image = app_container(deployment)["image"]
    assert DIGEST.search(image), f"prod image not pinned by digest: {image}"
    # The migration Job: the same image, and its own policy selects its pod only.
    job = prod.one("Job")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["image"] == image
    migrate_selector = policies["fastapi-app-migrate"]["spec"]["podSelector"]["matchLabels"]
    assert migrate_selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert policies["fastapi-app-migrate"]["spec"]["egress"] == policy["spec"]["egress"]


def test_the_migration_job_reads_the_generated_secret_and_dev_has_none() -> None:
    """kustomize renames the Secret by its hash; the Job's reference follows it. Dev runs on
    the embedded SQLite, which migrates itself: its overlay deletes the Job."""
    for name in ("base", "prod"):
        result = rendering(name)
        (migrate,) = result.one("Job")["spec"]["template"]["spec"]["containers"]
        assert migrate["command"] == ["python", "-m", "service.data.migrate"]
        env = {e["name"]: e for e in migrate["env"]}
        ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == result.one("Secret")["metadata"]["name"], name
        assert ref["optional"] is False
        annotations = result.one("Job")["metadata"].get("annotations") or {}
        assert not any(k.startswith("helm.sh/hook") for k in annotations), annotations
    assert rendering("dev").find("Job") == []


def test_the_migration_job_is_recreated_by_the_tool_that_applies_it_and_goes_first() -> None:
    """No helm hook anywhere; the Job carries what makes Argo CD and Flux re-create it when its
    immutable template changes, and it, the Secret it reads and (prod) its NetworkPolicy are
    in Argo CD's sync wave -1, before the Deployment (wave 0)."""
    wave = "argocd.argoproj.io/sync-wave"
    for name in ("base", "prod"):
        result = rendering(name)
        for obj in result.objects():
            annotations = obj["metadata"].get("annotations") or {}
            assert not any(k.startswith("helm.sh/hook") for k in annotations), obj["metadata"]
        job = result.one("Job")
        assert job["metadata"]["name"] == "fastapi-app-migrate"
        annotations = job["metadata"]["annotations"]
        assert annotations[wave] == "-1"
        assert annotations["argocd.argoproj.io/sync-options"] == "Force=true,Replace=true"
        assert annotations["kustomize.toolkit.fluxcd.io/force"] == "enabled"
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        assert result.one("Secret")["metadata"]["annotations"][wave] == "-1"
        assert wave not in (result.one("Deployment")["metadata"].get("annotations") or {})
    policies = {p["metadata"]["name"]: p for p in rendering("prod").find("NetworkPolicy")}
    assert policies["fastapi-app-migrate"]["metadata"]["annotations"][wave] == "-1"
    readme = (KUSTOMIZE_DIR / "README.md").read_text()
    assert "-l app.kubernetes.io/component=migrate --force" in readme
    assert "delete job" not in readme


def test_prod_secrets_file_holds_no_value() -> None:
    """Real credentials never land in git: the pipeline writes them before `kubectl apply -k`."""
    lines = [
        line
        for line in (KUSTOMIZE_DIR / "overlays/prod/secrets.env").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert {line.split("=", 1)[0] for line in lines} == SECRET_KEYS
    assert all(line.endswith("=") for line in lines), lines


def test_an_unfilled_prod_secret_stops_the_app_with_a_message() -> None:
    """What the prod overlay renders as-is: empty values. DATABASE_URL stops the app at start-up
    (never a pod-local SQLite file in production); the others mean 'unset'."""
    data: dict[str, Any] = rendering("prod").one("Secret").get("data") or {}
    assert set(data) == SECRET_KEYS and set(data.values()) == {""}
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings(dict.fromkeys(SECRET_KEYS, ""))
    settings = load_settings(
        {**dict.fromkeys(SECRET_KEYS, ""), "DATABASE_URL": "postgresql://u:p@db:5432/app"}
    )
    assert settings.redis_url is None and settings.admin_token is None and settings.api_tokens == {}


def test_kustomize_files_pass_yamllint() -> None:
    yamllint = require_tool("yamllint", "pip install yamllint (requirements-dev.txt)")
    # The generated files keep helm's long lines; the rest keeps to 120.
    config = (
        "{extends: default, rules: {document-start: disable,"
        " comments: {min-spaces-from-content: 1},"
        " line-length: {max: 120, ignore: [deploy/kustomize/base/, deploy/kustomize/components/]}}}"
    )
    files = sorted(str(p.relative_to(REPO_ROOT)) for p in KUSTOMIZE_DIR.rglob("*.yaml"))
    files += sorted(str(p.relative_to(REPO_ROOT)) for p in Path(__file__).parent.rglob("*.yaml"))
    proc = subprocess.run(
        [yamllint, "--strict", "-d", config, *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_make_kustomize_build_prints_both_overlays() -> None:
    make = require_tool("make", "apt-get install make")
    proc = subprocess.run(
        [make, "-s", "--no-print-directory", "-o", "venv", "kustomize-build"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    expected = [*rendering("dev").objects(), *rendering("prod").objects()]
    assert printed == expected
