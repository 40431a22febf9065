"""A stand-in for the Kubernetes API server, so the suite's glue (tests/e2e/cluster.py)
runs in CI against what a kind cluster's API server does on the wire.

Only what the glue calls is served, but that part the way kube-apiserver serves it:

- HTTPS with a certificate made at test time (its own CA, in the kubeconfig), HTTP/1.1
  with kept-alive connections;
- a watch is a chunked response that stays open until its `timeoutSeconds` (or until the
  server stops), delivers each change as it is made, from the `resourceVersion` asked for,
  and ends with the last chunk;
- with `allowWatchBookmarks=true`, a BOOKMARK (an object with only kind, apiVersion and
  metadata.resourceVersion) 2 s before the watch's deadline and every minute, as the
  watch cache sends them;
- a watch from a resourceVersion older than the collection's history (`expire()`) gets a
  200 with one ERROR event carrying a Status of code 410 (reason Expired), and a watch
  that is open when the history is compacted ends with the same event;
- a followed pod log is a chunked stream that ends when the container exits (its last
  line).
"""

from __future__ import annotations

import base64
import json
import re
import select
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Raw = dict[str, Any]
DEFAULT_WATCH_TIMEOUT_S = 60.0  # kube-apiserver: a random share of --min-request-timeout
BOOKMARK_BEFORE_DEADLINE_S = 2.0  # the watch cache's bookmark ahead of a watch's timeout
BOOKMARK_EVERY_S = 60.0
CLIENT_CHECK_S = 0.1  # how often an idle watch looks whether its client is still there
COLLECTIONS = {  # collection -> (kind of its items, apiVersion)
    "pods": ("Pod", "v1"),
    "endpointslices": ("EndpointSlice", "discovery.k8s.io/v1"),
}
VERSION = {
    "major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2026-08-26T00:00:00Z", "goVersion": "go1.25",
    "compiler": "gc", "platform": "linux/amd64",
}  # fmt: skip
_tls_dirs: list[tempfile.TemporaryDirectory[str]] = []  # kept until the process exits


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA the kubeconfig trusts
    cert: Path  # the server's certificate (127.0.0.1), signed by the CA
    key: Path


@cache
def certificates() -> Certificates:
    """A CA and a server certificate for 127.0.0.1, made with the openssl CLI (once per run)."""
    tmp = tempfile.TemporaryDirectory(prefix="fake-apiserver-tls-")
    _tls_dirs.append(tmp)
    d = Path(tmp.name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
            "-days", "2", "-subj", "/CN=fake-apiserver-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", "-new", *ec, "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"),
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", str(d / "server.ext"), "-out", str(d / "server.crt"))  # fmt: skip
    return Certificates(ca=d / "ca.crt", cert=d / "server.crt", key=d / "server.key")


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(("127.0.0.1", 0), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # The handshake happens in the connection's own thread (Handler.setup).
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, address


class FakeApiServer:
    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], Raw] = {}
        self.pods: dict[str, list[Raw]] = defaultdict(list)  # namespace -> pods
        self.slices: dict[str, list[Raw]] = defaultdict(list)
        self.logs: dict[tuple[str, str], list[str]] = {}  # (namespace, pod) -> lines
        self.log_line_delay_s = 0.01
        self.deleted: list[tuple[str, str]] = []
        self.requests: list[str] = []  # "GET path", "WATCH path", "DELETE path"
        self.watches: list[dict[str, str]] = []  # the query of every watch request
        self.open_watches = 0
        self.cut_watches = 0  # watches whose client went away before the server ended them
        self.bookmarks: list[str] = []  # the resourceVersion of every bookmark sent
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 100
        self._history: dict[str, list[tuple[int, Raw]]] = defaultdict(list)  # collection ->
        self._oldest: dict[str, int] = defaultdict(int)  # watchable from this version on
        self._epoch: dict[str, int] = defaultdict(int)  # +1 at each expire()
        self._closing = False
        tls = certificates()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        context.set_alpn_protocols(["http/1.1"])
        self.server = _TLSServer(self._handler(), context)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path, context: str) -> Path:
        ca = base64.b64encode(certificates().ca.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fake", "cluster": {"server": self.url, "certificate-authority-data": ca}}
            ],
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
        """A change to `collection` ("pods" or "endpointslices"): kind ADDED, MODIFIED or
        DELETED. Open watches get it at once; later ones if they start from before it."""
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise ValueError(f"not a change: {kind} (expire() makes the 410 ERROR events)")
        obj = json.loads(json.dumps(obj))
        with self._changed:
            self._version += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
            self._history[collection].append((self._version, {"type": kind, "object": obj}))
            self._changed.notify_all()

    def expire(self, collection: str) -> None:
        """Compact the collection's history: every watch open on it ends with an ERROR event
        (Status 410, Expired), and so does any new watch from a resourceVersion before now."""
        with self._changed:
            self._version += 1
            self._oldest[collection] = self._version
            self._history[collection].clear()
            self._epoch[collection] += 1
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive connections, chunked streams

            def setup(self) -> None:
                super().setup()
                try:
                    self.request.do_handshake()
                except (OSError, ssl.SSLError):
                    self.close_connection = True

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
                self._json(404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Failure", "message": f"{what} not found",
                                 "reason": "NotFound", "code": 404})  # fmt: skip

            def _start_stream(self, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _event(self, kind: str, obj: Raw) -> None:
                self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

            def _end_stream(self) -> None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _follow_log(self, lines: list[str]) -> None:
                self._start_stream("text/plain")
                for line in lines:
                    self._chunk(line.encode() + b"\n")
                    time.sleep(api.log_line_delay_s)
                self._end_stream()  # the container exited

            def _watch(self, collection: str, query: dict[str, str]) -> None:
                kind, api_version = COLLECTIONS[collection]
                timeout_s = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S)
                deadline = time.monotonic() + timeout_s
                bookmarks = query.get("allowWatchBookmarks") == "true"
                next_bookmark = (
                    min(deadline - BOOKMARK_BEFORE_DEADLINE_S, time.monotonic() + BOOKMARK_EVERY_S)
                    if bookmarks
                    else float("inf")
                )
                with api._lock:
                    epoch = api._epoch[collection]
                    asked = query.get("resourceVersion") or ""
                    sent = int(asked) if asked not in ("", "0") else api._version
                    too_old = sent < api._oldest[collection]
                self._start_stream("application/json")
                while True:
                    with api._changed:
                        pending = [e for v, e in api._history[collection] if v > sent]
                        expired = too_old or api._epoch[collection] != epoch
                        wait_s = min(deadline, next_bookmark) - time.monotonic()
                        if not pending and not expired and not api._closing:
                            api._changed.wait(min(CLIENT_CHECK_S, max(0.0, wait_s)))
                            pending = [e for v, e in api._history[collection] if v > sent]
                            expired = api._epoch[collection] != epoch
                        current = api._version
                        closing = api._closing
                    for event in pending:
                        self._event(event["type"], event["object"])
                        sent = int(event["object"]["metadata"]["resourceVersion"])
                    if expired:
                        self._event("ERROR", {
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "Expired", "code": 410,
                            "message": f"too old resource version: {sent} ({current})",
                        })  # fmt: skip
                        break
                    now = time.monotonic()
                    if now >= next_bookmark and now < deadline:
                        version = str(max(sent, current))
                        meta = {"resourceVersion": version}
                        self._event("BOOKMARK", {"kind": kind, "apiVersion": api_version,
                                                 "metadata": meta})  # fmt: skip
                        api.bookmarks.append(version)
                        next_bookmark = now + BOOKMARK_EVERY_S
                    if now >= deadline or closing:
                        break
                    if self._client_left():
                        raise ConnectionAbortedError("the client closed its watch")
                self._end_stream()

            def _client_left(self) -> bool:
                """A watching client sends nothing: a readable socket is its close."""
                readable, _, _ = select.select([self.request], [], [], 0)
                return bool(readable)

            def _collection(self, collection: str, items: list[Raw], path: str) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if query.get("watch") in ("true", "1"):
                    api.requests.append(f"WATCH {path}")
                    api.watches.append(query)
                    with api._lock:
                        api.open_watches += 1
                    try:
                        self._watch(collection, query)
                    except OSError:  # the client went away (ssl.SSLError is an OSError)
                        with api._lock:
                            api.cut_watches += 1
                        self.close_connection = True
                    finally:
                        with api._lock:
                            api.open_watches -= 1
                    return
                api.requests.append(f"GET {path}")
                kind, version = COLLECTIONS[collection]
                self._json(200, {"kind": f"{kind}List", "apiVersion": version, "items": items,
                                 "metadata": {"resourceVersion": api.next_version()}})  # fmt: skip

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                path = parts.path
                if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path):
                    self._collection("pods", api.pods[m[1]], path)
                    return
                if m := re.fullmatch(
                    r"/apis/discovery.k8s.io/v1/namespaces/([^/]+)/endpointslices", path
                ):
                    self._collection("endpointslices", api.slices[m[1]], path)
                    return
                api.requests.append(f"GET {path}")
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
                        try:
                            self._follow_log(lines)
                        except OSError:
                            self.close_connection = True
                    else:
                        data = "".join(f"{line}\n" for line in lines).encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "text/plain")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                else:
                    self._not_found(path)

            def do_DELETE(self) -> None:
                path = urlsplit(self.path).path
                api.requests.append(f"DELETE {path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)  # the DeleteOptions; read so the connection stays usable
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
