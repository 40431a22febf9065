"""Drill runs write their timeline picture, which needs matplotlib (bench/requirements.txt).
Before the first test marked `drill`, install it the way the make targets do
(`make bench-deps`), when it is missing; the unit tests beside them never need it."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

_installed: list[bool] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("drill") is None or _installed:
        return
    _installed.append(True)
    if importlib.util.find_spec("matplotlib") is not None:
        return
    make = require_tool("make", "apt-get install make")
    done = subprocess.run(
        [make, "-s", "bench-deps"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"make bench-deps: {done.stdout[-2000:]}{done.stderr[-2000:]}"
