"""Small wrappers around the docker and compose CLIs for the container tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tools.testbed.support import REPO_ROOT, wait_for

STANDINS_DIR = REPO_ROOT / "tests/container/standins"
TOOLS_BIN = REPO_ROOT / ".tools/bin"


def run(
    cmd: Sequence[str],
    *,
    timeout_s: float = 120,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output, so the test log shows why."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        list(cmd),
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def buildkit_docker() -> str:
    """A docker CLI able to build with BuildKit (see standins/docker-client.sh)."""
    out = run(["bash", str(STANDINS_DIR / "docker-client.sh")], timeout_s=30).stdout.strip()
    return shutil.which(out) or out


@dataclass(frozen=True)
class Docker:
    cli: str

    def __call__(
        self, *args: str, timeout_s: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([self.cli, *args], timeout_s=timeout_s, check=check)

    def inspect(self, obj: str) -> dict[str, Any]:
        data = json.loads(self("inspect", obj).stdout)
        assert isinstance(data, list) and data, f"nothing to inspect for {obj}"
        first = data[0]
        assert isinstance(first, dict)
        return first

    def image_exists(self, image: str) -> bool:
        return self("image", "inspect", image, check=False).returncode == 0

    def health(self, container: str) -> str:
        out = self(
            "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", container
        )
        return out.stdout.strip()

    def wait_healthy(self, container: str, timeout_s: float = 90) -> None:
        def healthy() -> bool:
            status = self.health(container)
            if status == "unhealthy":
                logs = self("logs", "--tail", "40", container, check=False)
                raise AssertionError(f"{container} unhealthy:\n{logs.stdout}\n{logs.stderr}")
            return status == "healthy"

        wait_for(healthy, timeout_s, interval_s=0.5, what=f"{container} to become healthy")

    def remove(self, *containers: str) -> None:
        if containers:
            self("rm", "-f", "-v", *containers, check=False)


@dataclass(frozen=True)
class LayerInfo:
    image_id: str
    size_bytes: int
    created_by: str


def history(docker: Docker, image: str) -> list[LayerInfo]:
    """`docker history`, newest first."""
    out = docker("history", "--no-trunc", "--human=false", "--format", "{{json .}}", image).stdout
    layers = []
    for line in out.splitlines():
        entry = json.loads(line)
        layers.append(
            LayerInfo(
                image_id=str(entry.get("ID", "")),
                size_bytes=int(entry.get("Size", 0)),
                created_by=str(entry.get("CreatedBy", "")),
            )
        )
    return layers


def get(url: str, timeout_s: float = 5) -> httpx.Response:
    return httpx.get(url, timeout=timeout_s, trust_env=False)


def wait_http(url: str, timeout_s: float, *, status: int = 200, what: str = "") -> httpx.Response:
    """Poll url until it answers `status`; return that response."""
    last: list[httpx.Response] = []

    def answered() -> bool:
        try:
            response = get(url, timeout_s=3)
        except httpx.HTTPError:
            return False
        last[:] = [response]
        return response.status_code == status

    try:
        wait_for(answered, timeout_s, interval_s=0.5, what=what or f"{url} -> {status}")
    except AssertionError as exc:
        seen = f"; last answer {last[0].status_code}: {last[0].text[:300]}" if last else ""
        raise AssertionError(f"{exc}{seen}") from None
    return last[0]


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
