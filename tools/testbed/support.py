"""Paths, free ports and polling for the throwaway servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools import REPO_ROOT

__all__ = ["REPO_ROOT", "MissingPrerequisite", "free_port", "unaccepting_port", "wait_for"]


class MissingPrerequisite(RuntimeError):
    """A program the server needs is not installed; the message names it."""


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A port nothing listens on now, never handed out before by this process. A server
    gets its port before it binds it (make bench starts a dozen at once), and the kernel
    may offer a closed probe's port again: two servers given one port made the second's
    health checks reach the first (its Gunicorn still retrying the bind)."""
    with _handed_out_lock:
        for _ in range(100):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("the kernel offered only ports already handed out, 100 times")


def wait_for(
    condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1, what: str = ""
) -> None:
    """Poll until condition() is true; fail with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port on 127.0.0.1 where a connect times out (not refused): a listener that never
    accepts, its accept queue filled (backlog 0 holds one connection). Linux then drops
    further SYNs and the client retransmits until its own connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=2)
    try:
        # The premise, checked: a connect hangs (a few tries: the filler's last ACK may
        # still be on its way into the queue).
        for _ in range(5):
            with socket.socket() as probe:
                probe.settimeout(0.2)
                try:
                    probe.connect(listener.getsockname())
                except TimeoutError:
                    break
        else:
            raise AssertionError("a full accept queue kept taking connections")
        yield int(listener.getsockname()[1])
    finally:
        filler.close()
        listener.close()
