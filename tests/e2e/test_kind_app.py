"""kind e2e: the release answers through the NodePort, logs JSON with trace ids, and a pod
deleted in the middle of a long request finishes it and shuts down in order."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e import clock, logs
from tests.e2e.cluster import Cluster, LogFollower, PodWatch
from tools.testbed.servers import active_requests
from tools.testbed.support import wait_for

pytestmark = pytest.mark.e2e
REPLICAS = 3


def get_ready(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/health/ready", timeout=5)
    except httpx.HTTPError:
        return None


def test_ready_through_the_nodeport_with_database_and_redis(cluster: Cluster) -> None:
    url = cluster.settings.url
    cluster.wait_settled(REPLICAS)
    last: list[httpx.Response | None] = [None]

    def answered_200() -> bool:
        last[0] = get_ready(url)
        return last[0] is not None and last[0].status_code == 200

    try:
        wait_for(answered_200, timeout_s=60, interval_s=1, what=f"{url}/health/ready -> 200")
    except AssertionError:
        response = last[0]
        body = "no answer" if response is None else f"{response.status_code} {response.text}"
        raise AssertionError(
            f"{url}/health/ready: {body}. The NodePort must be {url.rsplit(':', 1)[-1]} and "
            "mapped by the cluster's extraPortMappings (tests/e2e/kind-config.yaml)"
        ) from None
    assert last[0] is not None
    body = last[0].json()
    assert body["status"] == "ready", body
    assert body["checks"]["database"]["healthy"] is True, body
    assert body["checks"]["redis"]["healthy"] is True, body
    assert "not configured" not in json.dumps(body["checks"]["redis"]), body


def test_traceparent_is_logged_as_trace_id_and_every_line_is_json(cluster: Cluster) -> None:
    trace_id = secrets.token_hex(16)
    request_id = f"e2e-trace-{secrets.token_hex(4)}"
    headers = {
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        "X-Request-ID": request_id,
    }
    response = httpx.get(f"{cluster.settings.url}/api/items?limit=1", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id

    found: list[dict[str, Any]] = []

    def logged() -> bool:
        for pod in cluster.pod_names():
            records = logs.parse_log(cluster.log(pod)).records
            found[:] = [r for r in records if r.get("request_id") == request_id]
            if found:
                return True
        return False

    wait_for(logged, timeout_s=30, interval_s=1, what=f"a log line with request_id {request_id}")
    assert any(r.get("trace_id") == trace_id for r in found), found
    completed = [r for r in found if r.get("message") == "request_completed"]
    assert completed and completed[0]["trace_id"] == trace_id, found
    assert completed[0]["status_code"] == 200 and completed[0]["path"] == "/api/items"

    bad: list[str] = []
    for pod in cluster.pod_names():
        parsed = logs.parse_log(cluster.log(pod))
        assert parsed.records, f"{pod}: empty log"
        bad += logs.describe_bad_lines(pod, parsed)
    assert not bad, "log lines that are not JSON objects:\n" + "\n".join(bad)


class ProxiedRequest(threading.Thread):
    """A request sent to one pod through the API server's pod proxy (`kubectl get --raw`),
    so it is known to run on the pod the test deletes."""

    def __init__(self, cluster: Cluster, pod: str, port: int, path: str) -> None:
        super().__init__(daemon=True)
        ns = cluster.settings.namespace
        self.args = cluster.kubectl_args(
            "get", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy{path}"
        )
        self.cluster = cluster
        self.returncode: int | None = None
        self.output = ""
        self.finished_at: float | None = None

    def run(self) -> None:
        done = subprocess.run(self.args, capture_output=True, text=True, timeout=120, check=False)
        self.returncode, self.output = done.returncode, done.stdout + done.stderr
        self.finished_at = time.time()


def app_container(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == "app")
    return container


def container_port(pod: dict[str, Any]) -> int:
    return int(app_container(pod)["ports"][0]["containerPort"])


def pod_active_requests(cluster: Cluster, pod: dict[str, Any]) -> float:
    """The pod's in-flight GET requests (its metrics port, through the pod proxy)."""
    name, ns = pod["metadata"]["name"], cluster.settings.namespace
    port = next(p["containerPort"] for p in app_container(pod)["ports"] if p["name"] == "metrics")
    done = cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/metrics"
    )
    assert done.returncode == 0, f"metrics of {name}: {done.stderr}"
    return active_requests(done.stdout)


def prestop_seconds(pod: dict[str, Any]) -> float:
    """P of the pod: the native sleep action, or `exec: sleep N` before Kubernetes 1.30."""
    hook = (app_container(pod).get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = (hook.get("exec") or {}).get("command") or []
    return float(command[-1]) if command else 0.0


def test_deleted_pod_finishes_its_long_task_and_shuts_down_in_order(cluster: Cluster) -> None:
    cluster.wait_settled(REPLICAS)
    pod = cluster.pods()[0]
    name = str(pod["metadata"]["name"])
    prestop_s = prestop_seconds(pod)
    assert prestop_s > 0, "the e2e install must have a preStop (shutdown.preStopSeconds)"
    termination_s = float(pod["spec"]["terminationGracePeriodSeconds"])
    task_s = prestop_s + 7  # still running well after SIGTERM
    # Log times are the node's clock: measured against this machine's around the test.
    node = str(pod["spec"]["nodeName"])
    offset = clock.node_offset(cluster.settings.docker, node)

    follower = LogFollower(cluster, name).start_following()
    watch = PodWatch(cluster).start()
    request = ProxiedRequest(
        cluster, name, container_port(pod), f"/api/long-task?seconds={task_s:g}"
    )
    request.start()
    # The kubelet's probes count too but last milliseconds, and SIGTERM comes only after
    # the preStop sleep; shutdown_started's in_flight below shows the task was running.
    wait_for(
        lambda: pod_active_requests(cluster, pod) >= 1,
        timeout_s=30,
        interval_s=0.5,
        what=f"the long task in flight on {name}",
    )
    delete_started = time.time()
    deleted_at = cluster.delete_pod(name)

    request.join(task_s + 60)
    follower.wait_ended(termination_s + 30)
    watch.stop()
    offset = offset.join(clock.node_offset(cluster.settings.docker, node))

    assert request.returncode == 0, f"long task through the pod proxy: {request.output}"
    assert json.loads(request.output) == {"slept_seconds": task_s}
    parsed = logs.parse_lines(follower.lines)
    assert not parsed.bad_lines, logs.describe_bad_lines(name, parsed)
    problems = logs.shutdown_problems(parsed.records)
    assert not problems, "\n".join(problems)

    sigterm = logs.sigterm_at(parsed.records)
    exited = logs.last_timestamp(parsed.records)
    assert sigterm is not None and exited is not None
    started = [r for r in parsed.records if r["message"] == "shutdown_started"]
    assert sum(int(r.get("in_flight", 0)) for r in started) >= 1, started
    timing = clock.deletion_problems(
        prestop_s=prestop_s,
        termination_s=termination_s,
        delete_started=delete_started,
        deleted_at=deleted_at,
        sigterm_node=sigterm.timestamp(),
        exited_node=exited.timestamp(),
        clock=offset,
    )
    assert not timing, "\n".join(timing)
    # The long task ended inside the pod before it exited: both times from the pod's own log
    # (one clock; this machine's may differ from the node's, e.g. Docker Desktop's VM).
    served = [
        r for r in parsed.records
        if r.get("message") == "request_completed" and r.get("path") == "/api/long-task"
    ]  # fmt: skip
    assert served and served[-1].get("status_code") == 200, served
    assert sigterm <= logs.parse_timestamp(str(served[-1]["timestamp"])) <= exited, served
    assert request.finished_at is not None
    ended = watch.terminated.get(name)
    if ended is not None:  # the kubelet's last status before the pod object went away
        assert ended.get("exitCode") == 0, ended
    done_s = request.finished_at - deleted_at
    after_delete = offset.to_host(sigterm.timestamp()) - deleted_at
    exit_s = offset.to_host(exited.timestamp()) - deleted_at
    print(
        f"\n{name}: deleted, SIGTERM +{after_delete:.2f} s, long task done +{done_s:.2f} s, "
        f"exited +{exit_s:.2f} s (terminationGracePeriodSeconds {termination_s:g}; "
        f"{offset.describe()}); container ended: {ended or 'not seen'}"
    )
    cluster.wait_settled(REPLICAS)
