"""Thin glue between the e2e suite and a live kind cluster (the `kubernetes` client).

Nothing here decides pass or fail: it connects (or says in one line why it cannot),
reads logs, follows them while pods stop, and records EndpointSlice and pod changes with
the wall-clock time they arrived, for the pure modules beside it (logs, endpoints).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client as _client
from kubernetes import config as _config
from kubernetes import watch as _watch

from tests.e2e.endpoints import EndpointHistory, snapshot_from_slice
from tests.e2e.settings import E2ESettings

# The client's functions carry no type annotations: treat it as dynamic at this boundary.
k8s: Any = _client
kube_config: Any = _config
kube_watch: Any = _watch
ApiException: type[Exception] = _client.ApiException
Raw = dict[str, Any]
REQUEST_TIMEOUT_S = 15
WATCH_TIMEOUT_S = 5  # each watch request; the next one resumes from its resourceVersion


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def connect(settings: E2ESettings) -> tuple[Any, str | None]:
    """(ApiClient, None), or (None, one line naming what is missing)."""
    # Read now: the client reads KUBECONFIG once, when it is imported.
    config_file = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        contexts, _current = kube_config.list_kube_config_contexts(config_file=config_file)
    except Exception as exc:
        return None, f"no kubeconfig ({_short(exc)}): run `make e2e` (context {settings.context})"
    if settings.context not in {c.get("name") for c in contexts or []}:
        return None, (
            f"kubeconfig has no context {settings.context} (kind cluster {settings.cluster}); "
            "run `make e2e`, or set KIND_CLUSTER"
        )
    try:
        api = kube_config.new_client_from_config(
            config_file=config_file, context=settings.context, persist_config=False
        )
        k8s.VersionApi(api).get_code(_request_timeout=5)
    except Exception as exc:
        return None, f"the API server of {settings.context} does not answer ({_short(exc)})"
    try:
        k8s.AppsV1Api(api).read_namespaced_deployment(
            settings.release, settings.namespace, _request_timeout=REQUEST_TIMEOUT_S
        )
    except Exception as exc:
        return None, (
            f"no Deployment {settings.release} in namespace {settings.namespace} of "
            f"{settings.context} ({_short(exc)}); `make e2e` installs it"
        )
    return api, None


class Cluster:
    """The release's namespace in the kind cluster, through the API (and kubectl/helm)."""

    def __init__(self, settings: E2ESettings, api: Any) -> None:
        self.settings = settings
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.discovery = k8s.DiscoveryV1Api(api)

    def raw(self, obj: Any) -> Raw:
        """An API object as its JSON (camelCase keys), like a watch's raw_object."""
        value: Raw = self.api.sanitize_for_serialization(obj)
        return value

    # -- pods and logs -------------------------------------------------------------------

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[Raw]:
        """The app pods that are not terminating, by name."""
        listed = self.core.list_namespaced_pod(
            namespace or self.settings.namespace,
            label_selector=selector or self.settings.selector,
            _request_timeout=REQUEST_TIMEOUT_S,
        )
        pods = [self.raw(p) for p in listed.items]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return sorted(live, key=lambda p: str(p["metadata"]["name"]))

    def pod_names(self, namespace: str | None = None, selector: str | None = None) -> list[str]:
        return [str(p["metadata"]["name"]) for p in self.pods(namespace, selector)]

    def log(self, pod: str, namespace: str | None = None, container: str = "app") -> str:
        text: str = self.core.read_namespaced_pod_log(
            pod, namespace or self.settings.namespace, container=container,
            _request_timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
        return text

    def delete_pod(self, pod: str) -> float:
        """Delete with the pod's own grace period; returns when the API accepted it."""
        self.core.delete_namespaced_pod(pod, self.settings.namespace)
        return time.time()

    # -- the Deployment ------------------------------------------------------------------

    def deployment(self, name: str | None = None, namespace: str | None = None) -> Raw:
        obj = self.apps.read_namespaced_deployment(
            name or self.settings.release,
            namespace or self.settings.namespace,
            _request_timeout=REQUEST_TIMEOUT_S,
        )
        return self.raw(obj)

    def wait_settled(
        self,
        replicas: int | None = None,
        timeout_s: float = 300,
        name: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> Raw:
        """Until the rollout is complete: every pod updated, ready and available, and no
        pod of an older ReplicaSet left. `replicas` None: whatever spec.replicas says."""
        deadline = time.monotonic() + timeout_s
        status: Raw = {}
        while time.monotonic() < deadline:
            dep = self.deployment(name, namespace)
            want = replicas if replicas is not None else int(dep["spec"].get("replicas") or 1)
            status = dep.get("status") or {}
            counts = [status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas")]
            settled = (
                status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
                and counts == [want, want, want]
                and status.get("availableReplicas", 0) == want
                and len(self.pods(namespace, selector)) == want
            )
            if settled:
                return dep
            time.sleep(2)
        raise AssertionError(f"deployment not settled after {timeout_s:.0f} s: {status}")

    # -- command lines (kubectl and helm are also what the drill's rollout runs) ---------

    def kubectl_args(self, *args: str, namespace: str | None = None) -> list[str]:
        ns = namespace or self.settings.namespace
        return [self.settings.kubectl, "--context", self.settings.context, "-n", ns, *args]

    def kubectl(
        self,
        *args: str,
        namespace: str | None = None,
        stdin: str | None = None,
        timeout_s: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.kubectl_args(*args, namespace=namespace),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def helm_args(self, *args: str) -> list[str]:
        s = self.settings
        return [s.helm, *args, "--kube-context", s.context, "-n", s.namespace]


def shell_and(commands: Sequence[Sequence[str]]) -> str:
    """One bash command line running each command in turn, stopping at the first failure."""
    return " && ".join(shlex.join(list(c)) for c in commands)


class ListWatch(threading.Thread):
    """List, then watch, a namespaced collection; hand every object to `on_event` with the
    wall-clock time it arrived. Runs until stop(); a 410 Gone lists again."""

    def __init__(
        self,
        cluster: Cluster,
        list_fn: Callable[..., Any],
        selector: str,
        on_event: Callable[[str, Raw, float], None],
        namespace: str | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.list_fn = list_fn
        self.selector = selector
        self.on_event = on_event
        self.namespace = namespace or cluster.settings.namespace
        self.synced = threading.Event()
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._watch: Any = None

    def stop(self) -> None:
        """Ends the watch now. The API server holds a watch open (chunked HTTP/1.1) until
        its timeoutSeconds, so ending it early cuts the response in the middle: urllib3 then
        raises (ProtocolError: Response ended prematurely). That is the end asked for here,
        not a failure: whatever the thread raises once stop() has begun is not recorded."""
        self._stopping.set()
        watch = self._watch
        if watch is not None:
            watch.stop()
        self.join(WATCH_TIMEOUT_S + REQUEST_TIMEOUT_S)
        if self.is_alive():
            self.error = self.error or TimeoutError("the watch thread did not end")

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                listed = self.list_fn(
                    self.namespace, label_selector=self.selector, _request_timeout=REQUEST_TIMEOUT_S
                )
                version = listed.metadata.resource_version
                for item in listed.items:
                    self.on_event("LISTED", self.cluster.raw(item), time.time())
                self.synced.set()
                version = self._watch_from(version)
                if version is None:
                    continue  # expired: list again
        except BaseException as exc:  # reported by the test that reads the observations
            if not self._stopping.is_set():
                self.error = exc
        finally:
            self.synced.set()

    def _watch_from(self, version: str) -> str | None:
        while not self._stopping.is_set():
            self._watch = kube_watch.Watch()
            try:
                for event in self._watch.stream(
                    self.list_fn,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_S,
                    allow_watch_bookmarks=True,
                    # Reads wait at most this long: the server writes (a bookmark, the end)
                    # within timeoutSeconds, so a silent connection is a dead one.
                    _request_timeout=(REQUEST_TIMEOUT_S, WATCH_TIMEOUT_S + REQUEST_TIMEOUT_S),
                ):
                    kind = event["type"]
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_event(kind, event["raw_object"], time.time())
                    if self._stopping.is_set():
                        break
            except ApiException as exc:
                if getattr(exc, "status", None) == 410:
                    return None
                raise
            version = self._watch.resource_version or version
        return version


class EndpointWatch:
    """EndpointSlices of the release's Service, as an EndpointHistory."""

    def __init__(self, cluster: Cluster, service: str | None = None) -> None:
        self.history = EndpointHistory()
        name = service or cluster.settings.release
        self.thread = ListWatch(
            cluster,
            cluster.discovery.list_namespaced_endpoint_slice,
            f"kubernetes.io/service-name={name}",
            self._event,
        )

    def _event(self, kind: str, raw: Raw, at: float) -> None:
        self.history.observe(snapshot_from_slice(raw, at, deleted=kind == "DELETED"))

    def start(self) -> EndpointWatch:
        self.thread.start()
        self.thread.synced.wait(30)
        return self

    def stop(self) -> EndpointHistory:
        self.thread.stop()
        if self.thread.error is not None:
            raise AssertionError(f"EndpointSlice watch failed: {_short(self.thread.error)}")
        return self.history


class PodWatch:
    """When each app pod was first seen terminating and gone, and how its container ended."""

    def __init__(self, cluster: Cluster) -> None:
        self.deleting_at: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self.terminated: dict[str, Raw] = {}  # pod -> state.terminated of container "app"
        self.thread = ListWatch(
            cluster, cluster.core.list_namespaced_pod, cluster.settings.selector, self._event
        )

    def _event(self, kind: str, raw: Raw, at: float) -> None:
        name = str(raw["metadata"]["name"])
        if raw["metadata"].get("deletionTimestamp"):
            self.deleting_at.setdefault(name, at)
        for status in (raw.get("status") or {}).get("containerStatuses") or []:
            ended = (status.get("state") or {}).get("terminated")
            if status.get("name") == "app" and ended:
                self.terminated[name] = ended
        if kind == "DELETED":
            self.gone_at.setdefault(name, at)

    def start(self) -> PodWatch:
        self.thread.start()
        self.thread.synced.wait(30)
        return self

    def stop(self) -> None:
        self.thread.stop()
        if self.thread.error is not None:
            raise AssertionError(f"pod watch failed: {_short(self.thread.error)}")


class JobPodWatch:
    """The pods of one Job as they come and go (a hook Job and its pods are deleted when it
    succeeds, so what helm ran is only seen while it runs): pod name -> its last state."""

    def __init__(self, cluster: Cluster, job: str) -> None:
        self.job = job
        self.pods: dict[str, Raw] = {}
        self.deleted: set[str] = set()
        self.thread = ListWatch(
            cluster, cluster.core.list_namespaced_pod, f"batch.kubernetes.io/job-name={job}",
            self._event,
        )  # fmt: skip

    def _event(self, kind: str, raw: Raw, at: float) -> None:
        labels = raw["metadata"].get("labels") or {}
        if labels.get("batch.kubernetes.io/job-name") != self.job:
            return
        name = str(raw["metadata"]["name"])
        self.pods[name] = raw
        if kind == "DELETED":
            self.deleted.add(name)

    def start(self) -> JobPodWatch:
        self.thread.start()
        self.thread.synced.wait(30)
        return self

    def stop(self) -> None:
        self.thread.stop()
        if self.thread.error is not None:
            raise AssertionError(f"job pod watch failed: {_short(self.thread.error)}")


class LogFollower(threading.Thread):
    """Follows one pod's log from its start until the container exits (the stream ends),
    so the lines of a pod that is being deleted are kept after it is gone."""

    def __init__(self, cluster: Cluster, pod: str) -> None:
        super().__init__(daemon=True, name=f"log-{pod}")
        self.cluster = cluster
        self.pod = pod
        self.lines: list[str] = []
        self.ended_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            stream = kube_watch.Watch().stream(
                self.cluster.core.read_namespaced_pod_log,
                self.pod,
                self.cluster.settings.namespace,
                container="app",
            )
            for line in stream:
                self.lines.append(str(line))
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.time()

    def start_following(self) -> LogFollower:
        self.start()
        return self

    def wait_ended(self, timeout_s: float) -> None:
        self.join(timeout_s)
        if self.is_alive():
            raise AssertionError(f"{self.pod}: still logging {timeout_s:.0f} s later (not exited)")
