"""Helpers shared by the test suites: missing prerequisites, free ports, waiting."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """A prerequisite is missing: fail under CI=true, skip elsewhere, naming it."""
    message = f"missing prerequisite: {what}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, hint: str = "") -> str:
    """Path of an executable on PATH, in .venv/bin or .tools/bin, or missing()."""
    search = os.pathsep.join(
        [os.environ.get("PATH", ""), str(REPO_ROOT / ".venv/bin"), str(REPO_ROOT / ".tools/bin")]
    )
    path = shutil.which(name, path=search)
    if path is None:
        missing(f"{name}{' (' + hint + ')' if hint else ''}")
        raise AssertionError  # unreachable: missing() raises
    return path


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
