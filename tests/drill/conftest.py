"""Drill runs write their timeline picture, which needs matplotlib (bench/requirements.txt).
Before the first test marked `drill`, install it the way the make targets do
(`make bench-deps`), when it is missing; the unit tests beside them never need it."""

from __future__ import annotations

import pytest

from tests.drill.deps import ensure_matplotlib


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("drill") is not None:
        ensure_matplotlib()
