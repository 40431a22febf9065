"""Missing prerequisites: a failure under CI=true, a skip elsewhere, naming what is missing."""

from __future__ import annotations

import os
import shutil

import pytest

from tools.testbed.support import REPO_ROOT

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
