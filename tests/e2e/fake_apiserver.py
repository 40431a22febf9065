"""A tiny stand-in for the Kubernetes API server, so the suite's glue (tests/e2e/cluster.py)
runs in CI against real HTTP: lists, watches (JSON lines), a followed pod log, deletes.

Only what the glue calls is served. Watch events queued with `queue_event` go out once, on
the next watch of that collection, which then stays open a short while and ends (like a
watch reaching its timeoutSeconds), so the client watches again from its resourceVersion.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Raw = dict[str, Any]
WATCH_HOLD_S = 0.3
VERSION = {
    "major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2026-08-26T00:00:00Z", "goVersion": "go1.25",
    "compiler": "gc", "platform": "linux/amd64",
}  # fmt: skip


class FakeApiServer:
    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], Raw] = {}
        self.pods: dict[str, list[Raw]] = defaultdict(list)  # namespace -> pods
        self.slices: dict[str, list[Raw]] = defaultdict(list)
        self.logs: dict[tuple[str, str], list[str]] = {}  # (namespace, pod) -> lines
        self.log_line_delay_s = 0.01
        self.deleted: list[tuple[str, str]] = []
        self.requests: list[str] = []
        self._events: dict[str, list[Raw]] = defaultdict(list)  # collection -> watch events
        self._lock = threading.Lock()
        self._version = 100
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path, context: str) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": context,
        }
        path.write_text(json.dumps(config))
        return path

    def next_version(self) -> str:
        with self._lock:
            self._version += 1
            return str(self._version)

    def queue_event(self, collection: str, kind: str, obj: Raw) -> None:
        """collection: "pods" or "endpointslices"; kind: ADDED, MODIFIED, DELETED, ERROR."""
        if kind != "ERROR":
            obj = json.loads(json.dumps(obj))
            obj.setdefault("metadata", {})["resourceVersion"] = self.next_version()
        with self._lock:
            self._events[collection].append({"type": kind, "object": obj})

    def _take_events(self, collection: str) -> list[Raw]:
        with self._lock:
            events, self._events[collection] = self._events[collection], []
            return events

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # streams end when the connection closes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Raw) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self, what: str) -> None:
                self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "message": f"{what} not found", "reason": "NotFound",
                                 "code": 404})  # fmt: skip

            def _stream(self, lines: list[str], delay_s: float, hold_s: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                for line in lines:
                    self.wfile.write(line.encode() + b"\n")
                    self.wfile.flush()
                    time.sleep(delay_s)
                time.sleep(hold_s)

            def _collection(
                self, collection: str, items: list[Raw], query: dict[str, list[str]]
            ) -> None:
                if query.get("watch", ["false"])[0] == "true":
                    events = [json.dumps(e) for e in api._take_events(collection)]
                    self._stream(events, 0.01, WATCH_HOLD_S)
                    return
                kind = "PodList" if collection == "pods" else "EndpointSliceList"
                version = "v1" if collection == "pods" else "discovery.k8s.io/v1"
                self._json(200, {"kind": kind, "apiVersion": version, "items": items,
                                 "metadata": {"resourceVersion": api.next_version()}})  # fmt: skip

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                api.requests.append(f"GET {parts.path}")
                path = parts.path
                if path in ("/version", "/version/"):
                    self._json(200, VERSION)
                elif m := re.fullmatch(
                    r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)", path
                ):
                    found = api.deployments.get((m[1], m[2]))
                    self._json(200, found) if found else self._not_found(f"deployment {m[2]}")
                elif m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", path):
                    lines = api.logs.get((m[1], m[2]))
                    if lines is None:
                        self._not_found(f"pod {m[2]}")
                    elif query.get("follow", ["false"])[0] == "true":
                        self._stream(lines, api.log_line_delay_s, 0)
                    else:
                        data = "".join(f"{line}\n" for line in lines).encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "text/plain")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                elif m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path):
                    self._collection("pods", api.pods[m[1]], query)
                elif m := re.fullmatch(
                    r"/apis/discovery.k8s.io/v1/namespaces/([^/]+)/endpointslices", path
                ):
                    self._collection("endpointslices", api.slices[m[1]], query)
                else:
                    self._not_found(path)

            def do_DELETE(self) -> None:
                path = urlsplit(self.path).path
                api.requests.append(f"DELETE {path}")
                m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", path)
                pod = (
                    next((p for p in api.pods[m[1]] if p["metadata"]["name"] == m[2]), None)
                    if m
                    else None
                )
                if m is None or pod is None:
                    self._not_found(path)
                    return
                api.deleted.append((m[1], m[2]))
                self._json(200, pod)

        return Handler


def pod(name: str, *, ready: bool = True, deleting: bool = False, labels: Raw | None = None) -> Raw:
    meta: Raw = {"name": name, "namespace": "ns", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "fastapi-app:e2e"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def endpoint_slice(name: str, *states: tuple[str, bool, bool]) -> Raw:
    """states: (pod, ready, terminating)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "ns",
                     "labels": {"kubernetes.io/service-name": "fastapi-app"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.0.0.{i + 1}"],
             "conditions": {"ready": ready, "serving": True, "terminating": terminating},
             "targetRef": {"kind": "Pod", "name": p, "namespace": "ns"}}
            for i, (p, ready, terminating) in enumerate(states)
        ],
    }  # fmt: skip


def deployment(name: str, replicas: int, ready: int) -> Raw:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "fastapi-app"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "fastapi-app:e2e"}]}},
        },
        "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": ready, "availableReplicas": ready},
    }  # fmt: skip
