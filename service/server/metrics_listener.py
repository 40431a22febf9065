"""The /metrics listener, run by the Gunicorn master on METRICS_PORT (all interfaces).

Why the master: it is the one process that outlives every worker, so it can sum the workers'
files at every scrape, remove a dead worker's live gauges (`child_exit`), and answer while
all workers are busy, blocked or being replaced. The API port never serves /metrics.

Order matters, and gunicorn_conf's hooks keep it:
1. `prepare` (on_starting, before any fork): PROMETHEUS_MULTIPROC_DIR is set in the
   environment the workers inherit, prometheus_client's value class follows it, and the
   directory is emptied of a previous run's files (a restarted container keeps its /tmp).
2. `start` (when_ready, after the API listeners are bound): the port is bound (a busy
   METRICS_PORT stops the server) and one daemon thread runs an asyncio loop serving
   GET/HEAD /metrics (text format, OpenMetrics when the Accept header asks for it, gzip when
   accepted; 404 elsewhere; 500 naming the error's type when a collector fails; one
   request per connection).
3. `worker_exited` (child_exit): the dead worker's live gauges go; its counters and
   histograms stay, so totals never go down.
The thread only reads the files and writes to its sockets (no logging: the loop's exception
handler drops everything; no prometheus_client locks the workers use; no executor), so the
master's later forks cannot inherit a lock it holds.

No client can exhaust it (prometheus_client's own server opened a thread per connection,
without a timeout: 800 idle connections took the master to 790 threads and 322 MB): one
thread whatever the clients do; at most MAX_CONNECTIONS sockets, a new connection beyond
that closing the oldest one (an idle crowd cannot lock a scrape out); a connection whose
request head is not complete HEAD_TIMEOUT_SECONDS after it opened, or that does not take
its response within WRITE_TIMEOUT_SECONDS, is closed.

Files of dead workers stay until the next start (three of 64 KiB per dead worker); workers
are replaced only when they crash or miss their heartbeat, so they do not pile up. A file a
worker has created but not sized yet is skipped (WrittenFilesCollector).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import os
import socket
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The listener's bounds (see the module docstring). A scrape is one short connection
# (Prometheus sends its request at once); 32 leaves room for several Prometheus servers
# and a few people with curl.
MAX_CONNECTIONS = 32
HEAD_TIMEOUT_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 10.0  # Prometheus' default scrape_timeout
MAX_HEAD_BYTES = 16384  # a larger request head: the connection closes


def default_directory(port: int) -> Path:
    """One directory per API port, so servers side by side (tests, the drill) never share."""
    return Path(tempfile.gettempdir()) / f"fastapi-app-metrics-{port}"


def prepare(directory: Path) -> Path:
    """Create the directory, remove its *.db files, export it to the workers' environment."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus_client picks its value class when first imported, and the master's
    # configuration already imported it (through the access log's module). No value exists in
    # the master yet, so the class is picked again now; the workers inherit it at fork.
    from prometheus_client import values

    if not values.ValueClass._multiprocess:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


class MetricsServer:
    """GET/HEAD /metrics of `registry` on the listening socket `sock`, in a daemon thread
    running its own asyncio loop (built here, in the calling thread: the new thread only
    runs it)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        sock: socket.socket,
        max_connections: int = MAX_CONNECTIONS,
        head_timeout: float = HEAD_TIMEOUT_SECONDS,
        write_timeout: float = WRITE_TIMEOUT_SECONDS,
    ) -> None:
        self.registry = registry
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.write_timeout = write_timeout
        self.open: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self.loop = asyncio.SelectorEventLoop()
        self.loop.set_exception_handler(lambda _loop, _context: None)  # never log here
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD_BYTES)
        )
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="metrics-listener", daemon=True
        )
        self.thread.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open[writer] = None
        if len(self.open) > self.max_connections:
            oldest = next(iter(self.open))
            del self.open[oldest]
            oldest.transport.abort()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
            writer.transport.set_write_buffer_limits(high=0)  # drain() waits for all of it
            writer.write(self._respond(head))
            await asyncio.wait_for(writer.drain(), self.write_timeout)
        except (OSError, ValueError, EOFError, TimeoutError, asyncio.LimitOverrunError):
            pass  # evicted, closed, malformed, too large or too slow: the connection goes
        finally:
            self.open.pop(writer, None)
            writer.transport.abort()

    def _respond(self, head: bytes) -> bytes:
        request_line, *fields = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ")  # else ValueError: closed
        headers = {}
        for field in fields:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        reply = [("Connection", "close")]
        if target.partition("?")[0] != "/metrics":
            status, body = "404 Not Found", b"Not Found\n"
        elif method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b""
            reply.append(("Allow", "GET, HEAD"))
        else:
            encoder, content_type = choose_encoder(headers.get("accept", ""))
            try:
                status, body = "200 OK", encoder(self.registry)
            except Exception as error:  # a collector failed: say so (nothing is logged here)
                status, body = "500 Internal Server Error", collection_failed(error)
                content_type = "text/plain; charset=utf-8"
            reply.append(("Content-Type", content_type))
            if gzip_accepted(headers.get("accept-encoding", "")):
                body = gzip.compress(body)
                reply.append(("Content-Encoding", "gzip"))
        reply.append(("Content-Length", str(len(body))))
        lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in reply), "", ""]
        return "\r\n".join(lines).encode("latin-1") + (b"" if method == "HEAD" else body)

    def close(self) -> None:
        """Stop listening, close every connection and end the thread (tests: the master
        simply exits)."""

        async def close_all() -> None:
            self.server.close()
            for writer in list(self.open):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def collection_failed(error: Exception) -> bytes:
    """A failed scrape's body: the error's type and where it was raised (file and line,
    never its message or values), so Prometheus's scrape error names the cause; the
    connection used to close without an answer."""
    raised_at = traceback.extract_tb(error.__traceback__)[-1]  # caught: one frame at least
    where = f"{Path(raised_at.filename).name}:{raised_at.lineno}"
    return f"collecting the metrics failed: {type(error).__name__} at {where}\n".encode()


class WrittenFilesCollector(MultiProcessCollector):
    """prometheus_client's MultiProcessCollector without the files nothing was written to.

    A worker's file is created empty and sized a moment later (MmapedDict.__init__, on
    its first value of a kind: a worker's first request). A scrape in between failed
    whole (struct.error: the connection closed without an answer), and a worker killed
    in between left the empty file for good, failing every scrape after it
    (prometheus/client_python#1199). An empty file holds nothing recorded: skipped.
    collect() is upstream's with that filter (tests/unit/server/test_metrics_listener.py
    compares them, and fails once upstream reads empty files itself)."""

    def __init__(self, registry: CollectorRegistry, directory: Path) -> None:
        self.directory = directory
        super().__init__(registry, path=str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Any:
        files = glob.glob(os.path.join(self.directory, "*.db"))
        return self.merge([name for name in files if written(name)], accumulate=True)  # type: ignore[no-untyped-call]


def written(name: str) -> bool:
    """A worker's file sized by prometheus_client (gone: nothing to read either)."""
    try:
        return os.path.getsize(name) > 0
    except OSError:
        return False


def start(port: int, build_info: Any, directory: Path) -> MetricsServer:
    """Serve the sum of the workers' files and the build info on 0.0.0.0:port."""
    registry = CollectorRegistry()
    WrittenFilesCollector(registry, directory)
    registry.register(build_info)
    sock = socket.create_server(("0.0.0.0", port))  # Prometheus is elsewhere
    try:
        return MetricsServer(registry, sock)
    except BaseException:
        sock.close()
        raise


def worker_exited(pid: int, directory: Path) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def remove(directory: Path, owned: bool) -> None:
    """At the master's exit: its files go; the directory too when it was the default one."""
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
    if owned:
        with contextlib.suppress(OSError):  # not empty: someone else's files
            directory.rmdir()
