"""The suite's glue (tests/e2e/cluster.py) against a stand-in API server over real HTTP:
connecting or saying what is missing, lists, a followed log, and the watches that time a
rollout. What only a real cluster can show is left to the e2e tests themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import (
    WATCH_TIMEOUT_S,
    Cluster,
    EndpointWatch,
    JobPodWatch,
    LogFollower,
    PodWatch,
    connect,
    shell_and,
)
from tests.e2e.fake_apiserver import FakeApiServer, deployment, endpoint_slice, pod
from tests.e2e.settings import E2ESettings
from tools.testbed.support import wait_for

SELECTOR_LABELS = {
    "app.kubernetes.io/name": "fastapi-app",
    "app.kubernetes.io/instance": "fastapi-app",
}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig", "kind-test")))
    yield server
    server.stop()


def settings() -> E2ESettings:
    return E2ESettings.from_env({"KIND_CLUSTER": "test", "E2E_NAMESPACE": "ns"})


@pytest.fixture
def cluster(fake: FakeApiServer) -> Cluster:
    fake.deployments[("ns", "fastapi-app")] = deployment("fastapi-app", replicas=2, ready=2)
    api, problem = connect(settings())
    assert problem is None, problem
    return Cluster(settings(), api)


def test_no_kubeconfig_or_no_context_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    api, problem = connect(settings())
    assert api is None and problem is not None
    assert "kind-test" in problem and "make e2e" in problem and "\n" not in problem
    other = FakeApiServer()  # not started: only its kubeconfig is used
    monkeypatch.setenv("KUBECONFIG", str(other.kubeconfig(tmp_path / "kc", "kind-other")))
    api, problem = connect(settings())
    assert problem == (
        "kubeconfig has no context kind-test (kind cluster test); "
        "run `make e2e`, or set KIND_CLUSTER"
    )
    other.server.server_close()


def test_an_api_server_that_is_down_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = FakeApiServer()
    monkeypatch.setenv("KUBECONFIG", str(down.kubeconfig(tmp_path / "kc", "kind-test")))
    down.server.server_close()  # the port is closed: connection refused
    api, problem = connect(settings())
    assert api is None and problem is not None
    assert problem.startswith("the API server of kind-test does not answer")


def test_a_cluster_without_the_release_is_named(fake: FakeApiServer) -> None:
    api, problem = connect(settings())
    assert api is None and problem is not None
    assert problem.startswith("no Deployment fastapi-app in namespace ns of kind-test")
    assert "make e2e" in problem


def test_pods_logs_delete_and_settled(cluster: Cluster, fake: FakeApiServer) -> None:
    fake.pods["ns"] = [pod("b", labels=SELECTOR_LABELS), pod("a", labels=SELECTOR_LABELS),
                       pod("old", deleting=True, labels=SELECTOR_LABELS)]  # fmt: skip
    fake.logs[("ns", "a")] = ['{"message": "one"}', '{"message": "two"}']
    assert cluster.pod_names() == ["a", "b"]  # sorted, the terminating one left out
    assert cluster.log("a") == '{"message": "one"}\n{"message": "two"}\n'
    assert cluster.delete_pod("a") > 0 and fake.deleted == [("ns", "a")]
    assert cluster.wait_settled(2, timeout_s=5)["metadata"]["name"] == "fastapi-app"
    fake.deployments[("ns", "fastapi-app")] = deployment("fastapi-app", replicas=2, ready=1)
    with pytest.raises(AssertionError, match="not settled after 1 s"):
        cluster.wait_settled(2, timeout_s=1)
    assert any(r.startswith("GET /api/v1/namespaces/ns/pods") for r in fake.requests)


def test_log_follower_keeps_every_line_until_the_stream_ends(
    cluster: Cluster, fake: FakeApiServer
) -> None:
    lines = [json.dumps({"message": f"line-{i}"}) for i in range(50)]
    fake.logs[("ns", "p1")] = lines
    follower = LogFollower(cluster, "p1").start_following()
    follower.wait_ended(10)
    assert follower.error is None
    assert follower.lines == lines and follower.ended_at is not None


def test_endpoint_watch_times_a_pod_leaving(cluster: Cluster, fake: FakeApiServer) -> None:
    fake.slices["ns"] = [endpoint_slice("fastapi-app-x1", ("a", True, False), ("b", True, False))]
    watch = EndpointWatch(cluster).start()
    assert watch.history.in_rotation() == {"a", "b"}
    leaving = endpoint_slice("fastapi-app-x1", ("a", False, True), ("b", True, False))
    fake.queue_event("endpointslices", "MODIFIED", leaving)
    wait_for(lambda: "a" in watch.history.left_at, 10, what="a leaving")
    fake.queue_event(
        "endpointslices", "MODIFIED", endpoint_slice("fastapi-app-x1", ("b", True, False))
    )
    wait_for(lambda: "a" in watch.history.removed_at, 10, what="a removed")
    history = watch.stop()
    assert history.left_at["a"] < history.removed_at["a"]
    assert history.in_rotation() == {"b"} and "b" not in history.left_at


def test_an_expired_watch_lists_again(cluster: Cluster, fake: FakeApiServer) -> None:
    fake.slices["ns"] = [endpoint_slice("fastapi-app-x1", ("a", True, False))]
    watch = EndpointWatch(cluster).start()
    path = "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
    lists_before = fake.requests.count(f"GET {path}")
    wait_for(lambda: fake.open_watches == 1, 10, what="the watch open")
    fake.slices["ns"] = [endpoint_slice("fastapi-app-x1", ("a", False, True))]
    fake.expire("endpointslices")  # the open watch ends with ERROR 410 Expired
    wait_for(lambda: "a" in watch.history.left_at, 10, what="the state after listing again")
    watch.stop()
    assert fake.requests.count(f"GET {path}") == lists_before + 1


def test_stopping_a_watch_the_server_holds_open_is_no_error(
    cluster: Cluster, fake: FakeApiServer
) -> None:
    """The fake holds a watch open for its timeoutSeconds, as kube-apiserver does: stop()
    cuts a chunked HTTP/1.1 response over TLS in the middle, and that is no failure."""
    fake.slices["ns"] = [endpoint_slice("fastapi-app-x1", ("a", True, False))]
    for _ in range(3):
        watch = EndpointWatch(cluster).start()
        wait_for(lambda: fake.open_watches == 1, 10, what="the watch open on the server")
        cut = fake.cut_watches + 1
        watch.stop()  # raises if the thread recorded an error
        assert not watch.thread.is_alive()
        # The server saw its client go before the watch's deadline.
        wait_for(lambda: fake.cut_watches == cut, WATCH_TIMEOUT_S * 3, what="cut")  # noqa: B023
        wait_for(lambda: fake.open_watches == 0, WATCH_TIMEOUT_S * 3, what="watch closed")
    query = fake.watches[-1]
    assert query["timeoutSeconds"] == str(WATCH_TIMEOUT_S)
    assert query["allowWatchBookmarks"] == "true"
    assert query["labelSelector"] == "kubernetes.io/service-name=fastapi-app"


def test_a_watch_resumes_from_its_bookmark_without_listing_again(
    cluster: Cluster, fake: FakeApiServer
) -> None:
    """The server ends each watch at its timeoutSeconds, after a bookmark 2 s before; the
    next watch starts from the bookmark's resourceVersion, and nothing is listed again."""
    path = "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
    fake.slices["ns"] = [endpoint_slice("fastapi-app-x1", ("a", True, False))]
    watch = EndpointWatch(cluster).start()
    wait_for(lambda: fake.open_watches == 1, 10, what="the watch open on the server")
    # A change elsewhere moves the (cluster-wide) resourceVersion on: only the bookmark
    # tells this watch about it.
    fake.queue_event("pods", "ADDED", pod("elsewhere"))
    wait_for(lambda: len(fake.watches) >= 2, WATCH_TIMEOUT_S * 4, what="a second watch")
    fake.queue_event(
        "endpointslices", "MODIFIED", endpoint_slice("fastapi-app-x1", ("a", False, True))
    )
    wait_for(lambda: "a" in watch.history.left_at, 10, what="a change on the second watch")
    watch.stop()
    first, second = fake.watches[:2]
    assert fake.bookmarks and second["resourceVersion"] == fake.bookmarks[0]
    assert int(second["resourceVersion"]) > int(first["resourceVersion"])
    assert fake.requests.count(f"GET {path}") == 1


def test_pod_watch_records_deletion_exit_code_and_gone(
    cluster: Cluster, fake: FakeApiServer
) -> None:
    fake.pods["ns"] = [pod("a", labels=SELECTOR_LABELS)]
    watch = PodWatch(cluster).start()
    terminating = pod("a", deleting=True, labels=SELECTOR_LABELS)
    terminating["status"]["containerStatuses"] = [{
        "name": "app", "image": "fastapi-app:e2e", "imageID": "", "ready": False,
        "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
    }]  # fmt: skip
    fake.queue_event("pods", "MODIFIED", terminating)
    fake.queue_event("pods", "DELETED", terminating)
    wait_for(lambda: "a" in watch.gone_at, 10, what="pod a gone")
    watch.stop()
    assert watch.deleting_at["a"] <= watch.gone_at["a"]
    assert watch.terminated["a"] == {"exitCode": 0, "reason": "Completed"}


def test_job_pod_watch_keeps_the_pods_of_a_job_that_helm_deletes(
    cluster: Cluster, fake: FakeApiServer
) -> None:
    """A hook Job's pods are deleted with it when it succeeds: the watch keeps their last
    state; pods of other Jobs are left out."""
    job = {"batch.kubernetes.io/job-name": "fastapi-app-migrate"}
    watch = JobPodWatch(cluster, "fastapi-app-migrate").start()
    wait_for(lambda: fake.open_watches == 1, 10, what="the watch open on the server")
    assert fake.watches[-1]["labelSelector"] == "batch.kubernetes.io/job-name=fastapi-app-migrate"
    running = pod("fastapi-app-migrate-x1", labels=job)
    running["status"]["phase"] = "Running"
    fake.queue_event("pods", "ADDED", running)
    fake.queue_event(
        "pods", "ADDED", pod("other-job-y", labels={"batch.kubernetes.io/job-name": "y"})
    )
    done = pod("fastapi-app-migrate-x1", labels=job)
    done["status"]["phase"] = "Succeeded"
    fake.queue_event("pods", "MODIFIED", done)
    fake.queue_event("pods", "DELETED", done)
    wait_for(lambda: "fastapi-app-migrate-x1" in watch.deleted, 10, what="the Job's pod gone")
    watch.stop()
    assert set(watch.pods) == {"fastapi-app-migrate-x1"}
    assert watch.pods["fastapi-app-migrate-x1"]["status"]["phase"] == "Succeeded"


def test_logs_of_another_container(cluster: Cluster, fake: FakeApiServer) -> None:
    fake.logs[("ns", "job-pod")] = ['{"message": "migration_failed"}']
    assert cluster.log("job-pod", container="migrate") == '{"message": "migration_failed"}\n'
    assert any(r.endswith("/pods/job-pod/log") for r in fake.requests)


def test_command_lines(cluster: Cluster) -> None:
    args = cluster.kubectl_args("rollout", "status", "deployment/fastapi-app")
    assert args[1:] == [
        "--context",
        "kind-test",
        "-n",
        "ns",
        "rollout",
        "status",
        "deployment/fastapi-app",
    ]
    assert cluster.helm_args("test", "fastapi-app")[1:] == [
        "test", "fastapi-app", "--kube-context", "kind-test", "-n", "ns",
    ]  # fmt: skip
    assert shell_and([["echo", "a b"], ["true"]]) == "echo 'a b' && true"
