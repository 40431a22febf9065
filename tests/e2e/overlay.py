"""Fit a rendered kustomize overlay to the kind cluster, changing only what must change.

`kubectl kustomize deploy/kustomize/overlays/prod` names a registry image pinned by digest
and leaves the Secret's values empty (the pipeline fills them). On kind the image is the
one `make e2e` loaded, and the Secret points at the throwaway PostgreSQL and Redis. Every
other field (namespace, HPA, PDB, NetworkPolicy, probes, shutdown numbers) is applied as
rendered, so the test installs what production would.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Manifest = dict[str, Any]
APP_IMAGE_NAME = "fastapi-app"
POSTGRES_PORT = 5432
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod"})


def _pod_spec(doc: Manifest) -> Manifest:
    spec: Manifest = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return spec
    template: Manifest = spec.get("template") or {}
    pod: Manifest = template.get("spec") or {}
    return pod


def is_app_image(image: str) -> bool:
    """`registry/team/fastapi-app:1.0@sha256:...` -> True (the last path segment's name)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == APP_IMAGE_NAME


def app_containers(docs: Iterable[Manifest]) -> Iterator[Manifest]:
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = _pod_spec(doc)
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                if is_app_image(str(container.get("image", ""))):
                    yield container


def adapt(
    docs: Iterable[Manifest],
    *,
    image: str,
    secrets: Mapping[str, str],
    pull_policy: str = "Never",
) -> list[Manifest]:
    """A copy of `docs` with the app image replaced and the Secret keys in `secrets` set."""
    out = [copy.deepcopy(d) for d in docs if d]
    replaced = 0
    for container in app_containers(out):
        container["image"] = image
        container["imagePullPolicy"] = pull_policy
        replaced += 1
    if not replaced:
        raise ValueError(f"no container runs the {APP_IMAGE_NAME} image in the rendered overlay")
    for doc in out:
        if doc.get("kind") != "Secret":
            continue
        data: Manifest = doc.get("data") or {}
        string_data: Manifest = doc.get("stringData") or {}
        for key, value in secrets.items():
            if key in data or key in string_data:
                data.pop(key, None)
                string_data[key] = value
        if string_data:
            doc["stringData"] = string_data
        if data:
            doc["data"] = data
        else:
            doc.pop("data", None)
    return out


def namespaces(docs: Iterable[Manifest]) -> list[str]:
    return sorted(
        {str(d["metadata"]["namespace"]) for d in docs if d.get("metadata", {}).get("namespace")}
    )


def first(docs: Iterable[Manifest], kind: str) -> Manifest | None:
    return next((d for d in docs if d.get("kind") == kind), None)


def database_namespace(docs: Iterable[Manifest], default: str) -> str:
    """The namespace a NetworkPolicy lets the pods reach PostgreSQL in (by its name label),
    so the throwaway database goes where production's would be; `default` if none says."""
    for doc in docs:
        if doc.get("kind") != "NetworkPolicy":
            continue
        for rule in (doc.get("spec") or {}).get("egress") or []:
            ports = {p.get("port") for p in rule.get("ports") or []}
            if POSTGRES_PORT not in ports:
                continue
            for peer in rule.get("to") or []:
                labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                name = labels.get("kubernetes.io/metadata.name")
                if name:
                    return str(name)
    return default


def decoded_secret(doc: Manifest) -> dict[str, str]:
    """A Secret's values, from data (base64) and stringData."""
    values = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    values.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return values


def client_labels(docs: Iterable[Manifest]) -> dict[str, str]:
    """Labels a client pod in the app's namespace needs to pass the NetworkPolicy's ingress
    rules (the first podSelector peer); none when no NetworkPolicy restricts ingress."""
    for doc in docs:
        if doc.get("kind") != "NetworkPolicy":
            continue
        for rule in (doc.get("spec") or {}).get("ingress") or []:
            for peer in rule.get("from") or []:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    labels = (peer["podSelector"] or {}).get("matchLabels") or {}
                    return {str(k): str(v) for k, v in labels.items()}
    return {}
