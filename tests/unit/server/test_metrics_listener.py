"""The master's /metrics listener: its directory, both exposition formats, clean-up, and
its bounds (connections, head and write timeouts)."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from service.server import metrics_listener
from service.telemetry.metrics import BuildInfo
from tools.testbed.support import free_port, wait_for

REPO = Path(__file__).resolve().parents[3]


def test_default_directory_is_per_api_port() -> None:
    assert metrics_listener.default_directory(8000) != metrics_listener.default_directory(8001)
    assert metrics_listener.default_directory(8000).name == "fastapi-app-metrics-8000"


def test_prepare_removes_only_metric_files_and_exports_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics_listener.MULTIPROC_ENV, raising=False)
    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("not ours")
    # prepare() also switches prometheus_client's value class: run it in a fresh process.
    code = f"""
        import os
        from pathlib import Path
        from prometheus_client import values
        from service.server import metrics_listener
        assert not values.ValueClass._multiprocess
        metrics_listener.prepare(Path({str(tmp_path)!r}))
        assert values.ValueClass._multiprocess
        print(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_remove_keeps_a_directory_it_does_not_own(tmp_path: Path) -> None:
    owned, given = tmp_path / "owned", tmp_path / "given"
    for folder in (owned, given):
        folder.mkdir()
        (folder / "histogram_1.db").write_bytes(b"x")
    metrics_listener.remove(owned, owned=True)
    metrics_listener.remove(given, owned=False)
    assert not owned.exists()
    assert given.exists() and not any(given.iterdir())


def test_serves_text_and_openmetrics_on_request(tmp_path: Path) -> None:
    port = free_port()
    server = metrics_listener.start(port, BuildInfo("my-api", "2.0.0", "f00"), tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        text = httpx.get(url, timeout=5)
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'my_api_build_info{revision="f00",version="2.0.0"} 1.0' in text.text
        accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        om = httpx.get(url, headers={"Accept": accept}, timeout=5)
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.rstrip().endswith("# EOF")
        assert "# TYPE my_api_build_info gauge" in om.text
    finally:
        server.close()


def worker_files(directory: Path) -> None:
    """One worker's counter file with a value, and the file of another worker caught
    between creating its file and sizing it (or killed then): empty."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    written = MmapedDict(str(directory / "counter_111.db"))  # type: ignore[no-untyped-call]
    key = mmap_key("jobs_total", "jobs_total", ["kind"], ["a"], "Jobs.")
    written.write_value(key, 3.0, 0.0)  # type: ignore[no-untyped-call]
    written.close()  # type: ignore[no-untyped-call]
    (directory / "counter_222.db").touch()


def test_an_unsized_worker_file_does_not_fail_the_scrape(tmp_path: Path) -> None:
    worker_files(tmp_path)
    port = free_port()
    server = metrics_listener.start(port, BuildInfo("api", "1", "x"), tmp_path)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert 'jobs_total{kind="a"} 3.0' in answer.text
    finally:
        server.close()


def test_upstream_collect_still_fails_on_an_unsized_file(tmp_path: Path) -> None:
    """The control: prometheus_client's own collector on the same files. When this stops
    raising, upstream reads empty files itself (prometheus/client_python#1199): drop
    WrittenFilesCollector. Its collect() is upstream's with the filter: compare them."""
    import inspect
    import struct

    from prometheus_client.multiprocess import MultiProcessCollector

    worker_files(tmp_path)
    with pytest.raises(struct.error):
        list(MultiProcessCollector(None, path=str(tmp_path)).collect())  # type: ignore[no-untyped-call]
    upstream = [
        line.strip() for line in inspect.getsource(MultiProcessCollector.collect).splitlines()
    ]
    assert upstream[1:] == [
        "files = glob.glob(os.path.join(self._path, '*.db'))",
        "return self.merge(files, accumulate=True)",
    ]


def test_a_busy_port_is_an_error(tmp_path: Path) -> None:
    port = free_port()
    server = metrics_listener.start(port, BuildInfo("api", "1", "x"), tmp_path)
    try:
        with pytest.raises(OSError):
            metrics_listener.start(port, BuildInfo("api", "1", "x"), tmp_path)
    finally:
        server.close()


def bounded_server(
    max_connections: int = 32, head_timeout: float = 60, write_timeout: float = 10
) -> metrics_listener.MetricsServer:
    registry = CollectorRegistry()
    registry.register(BuildInfo("api", "1", "x"))
    sock = socket.create_server(("127.0.0.1", 0))
    return metrics_listener.MetricsServer(
        registry, sock, max_connections, head_timeout, write_timeout
    )


def address(server: metrics_listener.MetricsServer) -> tuple[str, int]:
    host, port = server.server.sockets[0].getsockname()[:2]
    return host, port


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed it (EOF or reset); False while it is open with nothing to read."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.fixture
def server() -> Iterator[metrics_listener.MetricsServer]:
    server = bounded_server(max_connections=4, head_timeout=60)
    yield server
    server.close()


def request(server: metrics_listener.MetricsServer, head: bytes) -> bytes:
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_head_gzip_404_405_and_garbage(server: metrics_listener.MetricsServer) -> None:
    host, port = address(server)
    url = f"http://{host}:{port}"
    zipped = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert zipped.headers["content-encoding"] == "gzip"
    assert "api_build_info" in zipped.text
    plain = request(server, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert plain.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in plain
    assert plain.endswith(b'api_build_info{revision="x",version="1"} 1.0\n')
    head = request(server, b"HEAD /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(gzip.compress(plain.split(b"\r\n\r\n", 1)[1]))
    assert httpx.get(f"{url}/", timeout=5).status_code == 404
    assert httpx.get(f"{url}/metricsx", timeout=5).status_code == 404
    refused = httpx.post(f"{url}/metrics", timeout=5)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert request(server, b"GARBAGE\r\n\r\n") == b""  # closed without an answer
    too_large = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * metrics_listener.MAX_HEAD_BYTES
    assert request(server, too_large) == b""


def test_a_new_connection_beyond_the_cap_closes_the_oldest(
    server: metrics_listener.MetricsServer,
) -> None:
    idle = [socket.create_connection(address(server), timeout=10) for _ in range(10)]
    try:
        wait_for(lambda: all(closed_by_server(s) for s in idle[:6]), 10, what="6 oldest closed")
        assert not any(closed_by_server(s) for s in idle[6:])  # the cap: 4 held
        assert request(server, b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")
        # The scrape took the place of the oldest idle one.
        wait_for(lambda: closed_by_server(idle[6]), 10, what="the oldest evicted")
        assert not any(closed_by_server(s) for s in idle[7:])
    finally:
        for sock in idle:
            sock.close()


def test_a_head_not_complete_in_time_is_closed() -> None:
    timeout = 1.0
    server = bounded_server(head_timeout=timeout)
    try:
        silent = socket.create_connection(address(server), timeout=10)
        trickle = socket.create_connection(address(server), timeout=10)
        opened = time.monotonic()
        for byte in b"GET /metrics HTTP/1.1\r\n":  # a byte every 0.1 s: still one deadline
            if closed_by_server(trickle):
                break
            trickle.setblocking(True)
            trickle.send(bytes([byte]))
            time.sleep(0.1)
        wait_for(lambda: closed_by_server(silent), 10 * timeout, what="idle connection closed")
        wait_for(lambda: closed_by_server(trickle), 10 * timeout, what="slow head closed")
        assert time.monotonic() - opened >= timeout * 0.9  # not before its deadline
        silent.close()
        trickle.close()
    finally:
        server.close()


class Broken(Collector):
    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("token=secret")  # a message that must not reach the answer


def test_a_failing_collector_gets_a_500_that_names_it(
    server: metrics_listener.MetricsServer,
) -> None:
    """Not a closed connection (Prometheus would only say EOF): a 500 with the error's
    type and place, never its message."""
    server.registry.register(Broken())
    for head in (b"GET /metrics HTTP/1.1\r\n\r\n", b"HEAD /metrics HTTP/1.1\r\n\r\n"):
        answer = request(server, head)
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), answer
        assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in answer
    body = request(server, b"GET /metrics HTTP/1.1\r\n\r\n").split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b"collecting the metrics failed: RuntimeError at ")
    assert b"test_metrics_listener.py:" in body and b"secret" not in body
    zipped = httpx.get(f"http://{':'.join(map(str, address(server)))}/metrics", timeout=5)
    assert zipped.status_code == 500 and zipped.text == body.decode()


class Big(Collector):
    """About 4 MB of exposition: more than the kernel's socket buffers hold."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("big", "b", labels=["n"])
        for n in range(60_000):
            family.add_metric([f"{n:060d}"], n)
        yield family


def test_a_client_that_does_not_read_its_response_is_cut() -> None:
    timeout = 1.0
    server = bounded_server(write_timeout=timeout)
    server.registry.register(Big())
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(address(server))
            sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            wait_for(lambda: bool(server.open), 10, what="the request taken")
            wait_for(lambda: not server.open, 10 * timeout, what="the stalled connection cut")
            received = b""
            while chunk := sock.recv(65536):  # what the kernel had taken, then the end
                received += chunk
            declared = int(received.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert len(received.split(b"\r\n\r\n", 1)[1]) < declared
    finally:
        server.close()
