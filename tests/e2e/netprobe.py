"""Connections tried from inside the kind cluster, to show its NetworkPolicies on the wire.

A probe pod (no label any policy selects, so its own egress is open) tries TCP connections
with `kubectl exec`; a canary pod listens on CANARY_PORT. The verdict first asks whether the
cluster enforces NetworkPolicy at all: the probe reaches the canary, then a deny-all policy
on the canary must stop it. Only then do the backend's answers mean anything: the backend
(only labelled clients in) must leave an unlabelled pod without an answer (connect timeout),
while the frontend (any source on its port) answers it. The pieces are pure functions (and
one read through the API), unit-tested in CI; tests/e2e/test_kind_netpol.py runs them.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.cluster import Cluster, Raw

CANARY_PORT = 8080
CONNECT_TIMEOUT_S = 3
LABEL = "fastapi-app-e2e/netpol"  # probe or canary: selected by no policy but the test's own
# One line on stdout: connected, timeout (no answer: dropped), refused (a reset), error ...
CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except TimeoutError:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(f"error {exc}")
"""
ENFORCEMENT_FIX = (
    "kind's own network (kindnet) enforces NetworkPolicy since kind v0.24.0 (kind v0.33.0 or "
    "later is what make e2e needs); a cluster made with disableDefaultCNI needs a network "
    "that enforces it (Calico, Cilium)"
)


def pod(name: str, role: str, image: str, command: list[str]) -> dict[str, Any]:
    """A pod of the app's image (already on the nodes) running `command`, restricted PSS."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL: role}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": role,
                "image": image,
                "imagePullPolicy": "Never",
                "command": command,
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip


def probe_pod(name: str, image: str) -> dict[str, Any]:
    return pod(name, "probe", image, ["python3", "-c", "import time; time.sleep(3600)"])


def canary_pod(name: str, image: str) -> dict[str, Any]:
    return pod(name, "canary", image, ["python3", "-m", "http.server", str(CANARY_PORT)])


def deny_all(name: str) -> dict[str, Any]:
    """Ingress to the canary denied from everywhere."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": {LABEL: "canary"}},
            "policyTypes": ["Ingress"],
            "ingress": [],
        },
    }


def connect_command(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """What `kubectl exec <probe> --` runs."""
    return ["python3", "-c", CONNECT, host, str(port), str(timeout_s)]


def outcome(returncode: int, stdout: str, stderr: str) -> str:
    """connected, timeout, refused or error ... from one connect_command run."""
    lines = stdout.strip().splitlines()
    if returncode != 0 or not lines:
        return f"error (exit {returncode}): {(stderr or stdout).strip()[:200]}"
    return lines[-1].strip()


def ready_ip(pods: list[Raw], name: str) -> str | None:
    """The IP of pod `name` once it is Ready; None before."""
    for item in pods:
        if item["metadata"]["name"] != name:
            continue
        status = item.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return str(status["podIP"]) if ready and status.get("podIP") else None
    return None


def canary_ip(cluster: Cluster, name: str) -> str | None:
    """The canary's IP through the API, once it is Ready."""
    return ready_ip(cluster.pods(selector=f"{LABEL}=canary"), name)


def verdict(canary_open: str, canary_denied: str, frontend: str, backend: str) -> list[str]:
    """What is wrong, one line each; nothing when the cluster enforces NetworkPolicy and the
    backend's lets an unlabelled pod in no more than a deny-all does."""
    if canary_open != "connected":
        return [
            f"the probe cannot reach the canary pod with no policy on it ({canary_open}): "
            "nothing below could mean anything"
        ]
    if canary_denied == "connected":
        return [
            "the cluster enforces no NetworkPolicy: the probe still connects to the canary pod "
            f"under a deny-all policy, so no policy of the suite is tested; {ENFORCEMENT_FIX}"
        ]
    problems = []
    if frontend != "connected":
        problems.append(f"the frontend does not answer a pod in its namespace: {frontend}")
    if backend != "timeout":
        problems.append(
            "a pod without the backend's client label got "
            f"{'an answer' if backend == 'connected' else repr(backend)} from the backend; "
            "expected no answer (connect timeout), as from the canary under deny-all "
            f"({canary_denied})"
        )
    return problems
