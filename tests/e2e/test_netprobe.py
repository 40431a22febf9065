"""The NetworkPolicy probe of the kind suite (tests/e2e/netprobe.py): its connect script run
for real against a listener, a dropped port and a closed one; the verdict, which fails a
cluster that enforces no policy; the canary's IP read through the fake API server."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import netprobe
from tests.e2e.cluster import Cluster, connect
from tests.e2e.fake_apiserver import FakeApiServer, deployment, pod
from tests.e2e.netpol import Endpoint, allows
from tests.e2e.settings import E2ESettings
from tools.testbed.support import free_port, unaccepting_port


def run_connect(port: int, timeout_s: float = 1) -> str:
    command = netprobe.connect_command("127.0.0.1", port, timeout_s)
    assert command[0] == "python3"
    done = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, timeout=30, check=False
    )
    return netprobe.outcome(done.returncode, done.stdout, done.stderr)


def test_the_connect_script_tells_an_answer_a_drop_and_a_reset_apart() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert run_connect(listener.getsockname()[1]) == "connected"
    with unaccepting_port() as dropped:
        assert run_connect(dropped) == "timeout"
    assert run_connect(free_port()) == "refused"


def test_an_exec_that_failed_is_an_error_outcome() -> None:
    assert netprobe.outcome(0, "timeout\n", "") == "timeout"
    failed = netprobe.outcome(1, "", 'error: pod "p" not found\n')
    assert failed.startswith("error (exit 1): error: pod")


def test_an_enforcing_cluster_with_the_backend_closed_to_strangers_passes() -> None:
    assert netprobe.verdict("connected", "timeout", "connected", "timeout") == []


def test_a_cluster_that_enforces_no_policy_fails_saying_so() -> None:
    (problem,) = netprobe.verdict("connected", "connected", "connected", "connected")
    assert problem.startswith("the cluster enforces no NetworkPolicy")
    assert "kind v0.24.0" in problem and "disableDefaultCNI" in problem


@pytest.mark.parametrize("backend", ["connected", "refused", "error (exit 1): boom"])
def test_a_backend_that_answers_or_resets_a_stranger_fails(backend: str) -> None:
    (problem,) = netprobe.verdict("connected", "timeout", "connected", backend)
    assert "without the backend's client label" in problem and "connect timeout" in problem


def test_a_frontend_that_does_not_answer_or_a_broken_probe_fails() -> None:
    (problem,) = netprobe.verdict("connected", "timeout", "timeout", "timeout")
    assert problem.startswith("the frontend does not answer")
    (broken,) = netprobe.verdict("refused", "not tried", "connected", "timeout")
    assert "cannot reach the canary pod with no policy" in broken


def test_deny_all_selects_the_canary_only_and_the_pods_run_the_loaded_image() -> None:
    probe = netprobe.probe_pod("p", "fastapi-app:e2e")
    canary = netprobe.canary_pod("c", "fastapi-app:e2e")
    src = Endpoint(probe["metadata"]["labels"], "ns")
    dst = Endpoint(canary["metadata"]["labels"], "ns")
    policy = netprobe.deny_all("deny") | {"metadata": {"name": "deny", "namespace": "ns"}}
    assert allows([], src, dst, netprobe.CANARY_PORT)
    assert not allows([policy], src, dst, netprobe.CANARY_PORT)
    assert allows([policy], dst, src, 8000)  # the probe is not selected
    for manifest in (probe, canary):
        (container,) = manifest["spec"]["containers"]
        assert container["imagePullPolicy"] == "Never" and container["image"] == "fastapi-app:e2e"
    assert canary["spec"]["containers"][0]["command"][-1] == str(netprobe.CANARY_PORT)


@pytest.fixture
def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Cluster, FakeApiServer]]:
    fake = FakeApiServer().start()
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig", "kind-test")))
    fake.deployments[("ns", "fastapi-app")] = deployment("fastapi-app", replicas=1, ready=1)
    settings = E2ESettings.from_env({"KIND_CLUSTER": "test", "E2E_NAMESPACE": "ns"})
    api, problem = connect(settings)
    assert problem is None, problem
    yield Cluster(settings, api), fake
    fake.stop()


def test_the_canary_ip_is_read_through_the_api_once_ready(
    cluster: tuple[Cluster, FakeApiServer],
) -> None:
    glue, fake = cluster
    labels = {netprobe.LABEL: "canary"}
    starting = pod("c", ready=False, labels=labels) | {"status": {"podIP": "10.244.1.7"}}
    fake.pods["ns"] = [pod("other", labels=labels), starting]
    assert netprobe.canary_ip(glue, "c") is None
    ready = pod("c", labels=labels)
    ready["status"]["podIP"] = "10.244.1.7"
    fake.pods["ns"] = [ready]
    assert netprobe.canary_ip(glue, "c") == "10.244.1.7"
    assert netprobe.canary_ip(glue, "gone") is None
    assert any(r.startswith("GET /api/v1/namespaces/ns/pods") for r in fake.requests)
