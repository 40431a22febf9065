"""Tools for the resilience suite: a service whose output goes through a real pipe,
raw HTTP over sockets, bounded load, and Gunicorn's worker processes under /proc."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import socket
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.testbed.servers import ServiceProcess
from tools.testbed.support import REPO_ROOT, wait_for

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, Linux


class PipeReader:
    """The read end of a real pipe, read by a thread into memory.

    The pipe is shrunk to pipe_bytes and the reader pauses after each small read, so
    the pipe is often full and writers block part-way through: exactly when a write
    larger than PIPE_BUF would be split and interleaved with another process's write."""

    def __init__(self, pipe_bytes: int = 16384, read_pause_s: float = 0.002) -> None:
        self.read_fd, self.write_fd = os.pipe()
        fcntl.fcntl(self.write_fd, F_SETPIPE_SZ, pipe_bytes)
        self.pipe_bytes = pipe_bytes
        self.read_pause_s = read_pause_s
        self.data = bytearray()
        self.max_queued = 0  # most bytes seen waiting in the pipe
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def writers_started(self) -> None:
        """Close our copy of the write end: EOF comes when the last writer exits."""
        os.close(self.write_fd)

    def _read(self) -> None:
        queued = bytearray(4)
        with os.fdopen(self.read_fd, "rb", buffering=0) as pipe:
            while True:
                fcntl.ioctl(pipe.fileno(), termios.FIONREAD, queued)
                self.max_queued = max(self.max_queued, int.from_bytes(queued, "little"))
                chunk = pipe.read(512)
                if not chunk:
                    return
                with self.lock:
                    self.data += chunk
                time.sleep(self.read_pause_s)

    def join(self, timeout_s: float = 30) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the pipe's writers did not all exit"

    def lines(self) -> list[bytes]:
        with self.lock:
            return bytes(self.data).split(b"\n")


class PipeService(ServiceProcess):
    """The real Gunicorn command with stdout and stderr on one PipeReader pipe."""

    def __init__(self, env: dict[str, str], pipe_bytes: int = 16384) -> None:
        super().__init__(env=env)
        self.pipe = PipeReader(pipe_bytes)

    def start(self, wait: str | None = "/health/live", timeout_s: float = 30) -> PipeService:
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.pipe.write_fd,
            stderr=self.pipe.write_fd,
        )
        self.pipe.writers_started()
        if wait:
            try:
                wait_for(lambda: self._answers(wait), timeout_s, what=f"{wait} on {self.url}")
            except BaseException:
                self.finish()  # nobody gets the server to stop it
                raise
        return self

    def finish(self) -> None:
        """Stop the service (SIGTERM, drain) and read the pipe to its end."""
        self.stop()
        self.pipe.join()

    def output(self) -> str:
        with self.pipe.lock:
            return self.pipe.data.decode("utf-8", errors="replace")


# -- Raw HTTP -------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int | None  # None: the connection closed (or reset) before a status line
    headers: dict[str, str]
    body: bytes
    error: str | None = None


def parse_response(data: bytes, error: str | None = None) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1."):
        return RawResponse(None, {}, data, error or "no status line")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return RawResponse(int(lines[0].split()[1]), headers, body, error)


def raw_exchange(port: int, request: bytes, timeout_s: float = 10) -> RawResponse:
    """Send bytes on a new connection, read until the server closes (or the response
    is complete by Content-Length)."""
    data = b""
    error = None
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(request)
            while not _complete(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
    return parse_response(data, error)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def request_bytes(
    method: str, target: str, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- Bounded load ---------------------------------------------------------------------


@dataclass
class Outcome:
    started: float  # monotonic
    elapsed_s: float
    path: str
    status: int | None
    error: str | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Load:
    """Threads sending requests over keep-alive connections until stopped, each bounded
    by max_requests and deadline_s. `pick(i)` chooses (method, path, body) for the i-th
    request of a thread."""

    def __init__(
        self,
        port: int,
        pick: Callable[[int, int], tuple[str, str, bytes | None]],
        threads: int = 4,
        max_requests: int = 5000,
        deadline_s: float = 120,
        timeout_s: float = 10,
        pause_s: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.headers = headers or {}
        self.pick = pick
        self.max_requests = max_requests
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s
        self.pause_s = pause_s
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending, and wait for the requests in flight: their outcomes belong in the
        snapshot (the server logs them either way). A request's socket operations time out
        after timeout_s each, so a very busy machine can take a few of those to finish."""
        self.stopping.set()
        deadline = time.monotonic() + 3 * (self.timeout_s + 5)
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        assert not alive, f"load threads still running after {3 * (self.timeout_s + 5)} s: {alive}"

    def _run(self, number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        end = time.monotonic() + self.deadline_s
        for i in range(self.max_requests):
            if self.stopping.is_set() or time.monotonic() > end:
                break
            method, path, body = self.pick(number, i)
            started = time.monotonic()
            try:
                headers = dict(self.headers)
                if body is not None:
                    headers["Content-Type"] = "application/json"
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                content = response.read()
                outcome = Outcome(
                    started,
                    time.monotonic() - started,
                    path,
                    response.status,
                    body=content,
                    headers={k.lower(): v for k, v in response.getheaders()},
                )
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
            except Exception as exc:  # recorded, never lost with the thread
                connection.close()
                outcome = Outcome(
                    started, time.monotonic() - started, path, None, f"{type(exc).__name__}: {exc}"
                )
            with self.lock:
                self.outcomes.append(outcome)
            if self.pause_s:
                time.sleep(self.pause_s)
        connection.close()

    def snapshot(self) -> list[Outcome]:
        with self.lock:
            return list(self.outcomes)


def json_body(outcome: Outcome) -> Any:
    return json.loads(outcome.body)


def checks_timed_out(ready_body: dict[str, Any], names: Iterable[str]) -> bool:
    """Whether these checks of a /health/ready answer all failed by timing out (the
    machine stalled the worker), none with an error from its dependency."""
    checks = ready_body["checks"]
    return all(checks[name].get("error") == "timeout" for name in names)


# -- Gunicorn's processes ---------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Live child processes of pid (Gunicorn's workers for the master's pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def socket_owner(server_port: int, client_port: int, candidates: list[int]) -> int | None:
    """Which of the candidate processes holds the server side of the TCP connection
    127.0.0.1:client_port -> 127.0.0.1:server_port."""
    wanted = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if (parts[1], parts[2]) == wanted:
            inode = parts[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in candidates:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None
