"""kind e2e: the kustomize prod overlay, installed as rendered (HPA, PDB, NetworkPolicy,
its namespace), becomes ready against PostgreSQL and Redis in the namespace its
NetworkPolicy lets the pods reach, and answers a labelled client through its Service."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from tests.e2e import backing, logs, overlay
from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
PASSWORD = "e2e-only-password"  # tests/e2e/manifests/backing-services.yaml


def ensure_namespace(cluster: Cluster, name: str) -> None:
    """Create it, after waiting out a deletion left by an earlier run."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = cluster.kubectl("get", "namespace", name, "-o", "json", namespace=name)
        if found.returncode != 0:
            created = cluster.kubectl("create", "namespace", name, namespace=name)
            assert created.returncode == 0, created.stderr
            return
        if json.loads(found.stdout)["status"].get("phase") != "Terminating":
            return
        time.sleep(3)
    raise AssertionError(f"namespace {name} still terminating after 240 s")


def client_pod(name: str, image: str, url: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod running the app's image, checking `url` with its Python (restricted PSS)."""
    check = (
        "import sys, time, urllib.request\n"
        "for attempt in range(30):\n"
        "    try:\n"
        "        print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n"
        "        sys.exit(0)\n"
        "    except Exception as exc:\n"
        "        print(f'attempt {attempt}: {exc}', file=sys.stderr)\n"
        "        time.sleep(2)\n"
        "sys.exit(1)\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "check",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", check, url],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip


def test_prod_overlay_becomes_ready(cluster: Cluster) -> None:
    s = cluster.settings
    rendered = cluster.kubectl("kustomize", str(s.overlay), timeout_s=60)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    (app_ns,) = overlay.namespaces(docs)
    data_ns = overlay.database_namespace(docs, default=app_ns)
    image = f"{s.image_repository}:{s.tag}"
    domain = "svc.cluster.local"
    secrets = {
        "DATABASE_URL": f"postgresql://app:{PASSWORD}@postgres.{data_ns}.{domain}:5432/app",
        "REDIS_URL": f"redis://redis.{data_ns}.{domain}:6379/0",
    }
    adapted = overlay.adapt(docs, image=image, secrets=secrets)
    deployment = overlay.first(adapted, "Deployment")
    service = overlay.first(adapted, "Service")
    hpa = overlay.first(adapted, "HorizontalPodAutoscaler")
    assert deployment is not None and service is not None
    replicas = int(
        (hpa or {}).get("spec", {}).get("minReplicas") or deployment["spec"].get("replicas") or 1
    )
    selector = ",".join(
        f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items()
    )
    name = str(deployment["metadata"]["name"])

    try:
        for ns in dict.fromkeys([data_ns, app_ns]):
            ensure_namespace(cluster, ns)
        # With E2E_POSTGRES_IMAGE / E2E_REDIS_IMAGE (a mirror) as make e2e-deps applies it.
        manifest = backing.render(backing.images_from_env())
        applied = cluster.kubectl("apply", "-f", "-", namespace=data_ns, stdin=manifest)
        assert applied.returncode == 0, applied.stderr
        waited = cluster.kubectl(
            "wait", "--for=condition=Available", "deployment/postgres", "deployment/redis",
            "--timeout=300s", namespace=data_ns, timeout_s=330,
        )  # fmt: skip
        assert waited.returncode == 0, waited.stdout + waited.stderr

        applied = cluster.kubectl(
            "apply", "-f", "-", namespace=app_ns, stdin=yaml.safe_dump_all(adapted)
        )
        assert applied.returncode == 0, applied.stderr
        # The Deployment has no replicas field (the HPA owns it): it starts with one pod and
        # the HPA raises it to minReplicas, with or without a metrics server.
        cluster.wait_settled(replicas, 420, name=name, namespace=app_ns, selector=selector)

        pods = cluster.pod_names(app_ns, selector)
        for pod in pods:
            parsed = logs.parse_log(cluster.log(pod, app_ns))
            assert not parsed.bad_lines, logs.describe_bad_lines(pod, parsed)
            started = [r for r in parsed.records if r.get("message") == "startup_complete"]
            assert started and started[0]["database"] == "postgresql" and started[0]["redis"]

        # A client the NetworkPolicy admits (its label) reads readiness through the Service.
        port = service["spec"]["ports"][0]["port"]
        url = f"http://{service['metadata']['name']}.{app_ns}.{domain}:{port}/health/ready"
        client_label = overlay.client_labels(adapted)
        client = client_pod("e2e-ready-client", image, url, client_label)
        created = cluster.kubectl("apply", "-f", "-", namespace=app_ns, stdin=json.dumps(client))
        assert created.returncode == 0, created.stderr
        done = cluster.kubectl(
            "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/e2e-ready-client",
            "--timeout=120s", namespace=app_ns, timeout_s=150,
        )  # fmt: skip
        output = cluster.kubectl("logs", "e2e-ready-client", namespace=app_ns)
        assert done.returncode == 0, f"{done.stderr}\n{output.stdout}{output.stderr}"
        body = json.loads(output.stdout.strip().splitlines()[-1])
        assert body["status"] == "ready", body
        assert body["checks"]["database"]["healthy"] and body["checks"]["redis"]["healthy"], body
        print(f"\nprod overlay: {len(pods)} pods ready in {app_ns}, database in {data_ns}: {body}")
    finally:
        for ns in dict.fromkeys([app_ns, data_ns]):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", namespace=ns)
