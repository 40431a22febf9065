"""Start-up and shutdown times of the real Gunicorn command."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from tools.testbed.servers import ServiceProcess

POLL_INTERVAL_S = 0.01
READY_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 60.0
# An idle server: ready, then left alone this long before the SIGTERM.
IDLE_BEFORE_SIGTERM_S = 0.5


class LifecycleError(Exception):
    """The server did not get ready, or did not exit cleanly, in time."""


@dataclass
class Lifecycle:
    start_to_ready_s: float
    sigterm_to_exit_s: float
    exit_code: int


def http_status(port: int, path: str, timeout_s: float = 0.5) -> int | None:
    """Status code of one GET on 127.0.0.1:port, or None when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def wait_ready(service: ServiceProcess, started: float) -> float:
    """Seconds from `started` to the first 200 from /health/ready (polled every 10 ms)."""
    assert service.process is not None
    deadline = started + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if http_status(service.port, "/health/ready") == 200:
            return time.monotonic() - started
        if service.process.poll() is not None:
            raise LifecycleError(f"service exited early:\n{service.output()[-2000:]}")
        time.sleep(POLL_INTERVAL_S)
    raise LifecycleError(f"/health/ready not 200 within {READY_TIMEOUT_S} s")


def measure_lifecycle(service: ServiceProcess) -> Lifecycle:
    """Start the server, time it to ready, leave it idle, time SIGTERM to exit."""
    started = time.monotonic()
    service.start(wait=None)
    try:
        ready_s = wait_ready(service, started)
        time.sleep(IDLE_BEFORE_SIGTERM_S)
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        try:
            code = service.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise LifecycleError(f"no exit within {EXIT_TIMEOUT_S} s of SIGTERM") from exc
        exit_s = time.monotonic() - signalled
    finally:
        service.stop()
    return Lifecycle(round(ready_s, 3), round(exit_s, 3), code)
