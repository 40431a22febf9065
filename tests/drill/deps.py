"""The drills' picture needs matplotlib (bench/requirements.txt): install it the way the
make targets do (`make bench-deps`) when it is missing, once per test session."""

from __future__ import annotations

import importlib.util
import subprocess

from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

_done: list[bool] = []


def ensure_matplotlib() -> None:
    if _done:
        return
    _done.append(True)
    if importlib.util.find_spec("matplotlib") is not None:
        return
    make = require_tool("make", "apt-get install make")
    # Under the test's own 300 s timeout, so a slow install reports its output.
    done = subprocess.run(
        [make, "-s", "bench-deps"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"make bench-deps: {done.stdout[-2000:]}{done.stderr[-2000:]}"
