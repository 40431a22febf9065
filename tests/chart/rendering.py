"""Render the chart with real helm (v3 or v4) and pick objects out of what it prints."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

CHART_DIR = REPO_ROOT / "deploy/helm/fastapi-app"
CI_VALUES = tuple(sorted((CHART_DIR / "ci").glob("*.yaml")))
# The Kubernetes versions the chart supports and is validated against.
KUBE_VERSIONS = ("1.28.0", "1.30.0", "1.32.0", "1.34.0")
DEFAULT_KUBE_VERSION = "1.34.0"
RELEASE = "demo"
FULLNAME = f"{RELEASE}-fastapi-app"
INSTALL_HINT = "bash tools/install-helm.sh"

Manifest = dict[str, Any]


def helm_binary(name: str = "helm") -> str:
    """Path of helm (v3) or helm4; missing() when not installed."""
    return require_tool(name, INSTALL_HINT)


@dataclass(frozen=True)
class Result:
    """What one `helm template` run printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def objects(self) -> list[Manifest]:
        assert self.ok, f"helm template failed:\n{self.stderr}"
        docs: list[Manifest] = [doc for doc in yaml.safe_load_all(self.stdout) if doc]
        return docs

    def find(self, kind: str) -> list[Manifest]:
        return [obj for obj in self.objects() if obj["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        found = self.find(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects()}

    # The pieces most tests look at.
    def pod_spec(self) -> Manifest:
        spec: Manifest = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    def app_container(self) -> Manifest:
        containers: list[Manifest] = self.pod_spec()["containers"]
        (container,) = [c for c in containers if c["name"] == "app"]
        return container

    def config(self) -> dict[str, str]:
        """The ConfigMap's data (the app's non-secret environment but the shutdown numbers)."""
        data: dict[str, str] = self.one("ConfigMap")["data"]
        return data

    def pod_env(self) -> dict[str, str]:
        """The app container's `env` entries that carry a literal value."""
        env: list[Manifest] = self.app_container().get("env", [])
        return {e["name"]: e["value"] for e in env if "value" in e}

    def secret_refs(self) -> dict[str, Manifest]:
        """The app container's `env` entries read from a Secret: name -> secretKeyRef."""
        env: list[Manifest] = self.app_container().get("env", [])
        return {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in env
            if "secretKeyRef" in e.get("valueFrom", {})
        }

    def env(self) -> dict[str, str]:
        """The app's non-secret environment as it starts: the ConfigMap, then the pod's env."""
        return {**self.config(), **self.pod_env()}


@cache
def _run(helm: str, values_json: str, files: tuple[str, ...], args: tuple[str, ...]) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as handle:
        handle.write(values_json)
        handle.flush()
        command = [helm, "template", RELEASE, str(CHART_DIR), *args]
        for file in files:
            command += ["-f", file]
        command += ["-f", handle.name]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def template(
    values: Manifest | None = None,
    *,
    files: Sequence[Path] = (),
    kube_version: str = DEFAULT_KUBE_VERSION,
    helm: str = "helm",
    args: Sequence[str] = (),
) -> Result:
    """Run `helm template` with values files, then `values` (as a file, so types survive)."""
    return _run(
        helm_binary(helm),
        json.dumps(values or {}, sort_keys=True),
        tuple(str(f) for f in files),
        ("--kube-version", kube_version, *args),
    )


def render(values: Manifest | None = None, **kwargs: Any) -> Result:
    """helm template that must succeed."""
    result = template(values, **kwargs)
    assert result.ok, f"helm template failed for {values}:\n{result.stderr}"
    return result


def render_error(values: Manifest | None = None, **kwargs: Any) -> str:
    """helm template that must fail; its error text (whitespace folded to single spaces)."""
    result = template(values, **kwargs)
    assert not result.ok, f"helm template accepted {values}, expected a failure"
    return re.sub(r"\s+", " ", result.stderr)


def ci_kube_versions(values_file: Path) -> tuple[str, ...]:
    """Versions a ci/*.yaml file is rendered for: its `# kube-versions:` line, else all."""
    for line in values_file.read_text().splitlines():
        if line.startswith("# kube-versions:"):
            wanted = line.split(":", 1)[1].split()
            return tuple(v for v in KUBE_VERSIONS if v.rsplit(".", 1)[0] in wanted)
    return KUBE_VERSIONS


def supports_sleep_action(kube_version: str) -> bool:
    major, minor = (int(part) for part in kube_version.lstrip("v").split(".")[:2])
    return (major, minor) >= (1, 30)
