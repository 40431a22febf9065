"""Paths, free ports and polling for the throwaway servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tools import REPO_ROOT

__all__ = ["REPO_ROOT", "MissingPrerequisite", "free_port", "wait_for"]


class MissingPrerequisite(RuntimeError):
    """A program the server needs is not installed; the message names it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
