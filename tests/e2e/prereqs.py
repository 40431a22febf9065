"""Prerequisites of `make e2e`: which tools are missing, and how to install each one.

Run as `python -m tests.e2e.prereqs docker=docker kind=kind kubectl=PATH helm=PATH` (what
make/e2e.mk does first): it prints the tool each name resolves to, or a line per missing
tool saying how to install it, checks that the Docker daemon answers and, on Linux, that
the inotify limits hold a 3-node kind cluster with followed logs (kind's known-issues
page), that kind is v0.33.0 or later (`kind version`), that kubectl is within one minor
version of E2E_NODE_IMAGE's Kubernetes (kubectl's version skew policy), that helm is 3 or
4 (`helm version --short`: the flag of a rolled-back upgrade differs), and exits 1 on any
problem. The checks themselves are pure
functions, unit-tested in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.helm_version import HelmVersionError, rollback_flag_of, version_output

# How to get each tool, in the order `make e2e` needs them.
INSTALL_HINTS: dict[str, str] = {
    "docker": "install Docker Engine (Linux) or Docker Desktop, then start it: "
    "https://docs.docker.com/get-started/get-docker/",
    "kind": "install kind v0.33 or later: https://kind.sigs.k8s.io/docs/user/quick-start/"
    "#installation (or `go install sigs.k8s.io/kind@v0.33.0`)",
    "kubectl": "`make e2e-kubectl` installs the release of E2E_NODE_IMAGE's Kubernetes "
    "into .tools/bin (make e2e runs it first), or "
    "https://kubernetes.io/docs/tasks/tools/",
    "helm": "`make tools` installs helm v3.19.0 and v4.1.4 (helm4) into .tools/bin (make e2e "
    "does when E2E_HELM is one of those; the default is .tools/bin/helm), or "
    "https://helm.sh/docs/intro/install/",
}


# kind nodes share the host's inotify limits (Docker Desktop: its VM's, not checked here).
# E2E_INOTIFY_DIR reads them elsewhere (the tests of make e2e with stand-in tools).
INOTIFY_DIR = Path("/proc/sys/fs/inotify")
INOTIFY_MINIMUM = {"max_user_instances": 512, "max_user_watches": 524288}


@dataclass(frozen=True)
class Tool:
    name: str  # what it is: docker, kind, kubectl, helm
    command: str  # what make will run: a name looked up on PATH, or a path
    path: str | None  # where it was found; None when missing

    @property
    def problem(self) -> str | None:
        if self.path is not None:
            return None
        hint = INSTALL_HINTS.get(self.name, "install it")
        return f"missing {self.name} ({self.command}): {hint}"


def parse_tools(args: Sequence[str]) -> dict[str, str]:
    """`name=command` arguments, in order; a bare `name` means the command `name`."""
    tools: dict[str, str] = {}
    for arg in args:
        name, sep, command = arg.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"expected name=command, got {arg!r}")
        tools[name] = command.strip() if sep and command.strip() else name
    return tools


def locate(tools: Mapping[str, str], path_env: str | None = None) -> list[Tool]:
    """Resolve each command: a path must be an executable file, a name is looked up on PATH."""
    search = os.environ.get("PATH", "") if path_env is None else path_env
    found: list[Tool] = []
    for name, command in tools.items():
        if os.sep in command:
            ok = os.path.isfile(command) and os.access(command, os.X_OK)
            path = os.path.abspath(command) if ok else None
        else:
            path = shutil.which(command, path=search)
        found.append(Tool(name, command, path))
    return found


def docker_daemon_problem(returncode: int, output: str) -> str | None:
    """What `docker info` says about the daemon; None when it answered."""
    if returncode == 0:
        return None
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
    detail = f": {last}" if last else ""
    return (
        f"docker is installed but its daemon does not answer (`docker info` failed{detail}): "
        "start Docker"
    )


def read_inotify(directory: Path | None = None) -> dict[str, int]:
    """The current limits that can be read (none where /proc has no inotify: not Linux)."""
    directory = INOTIFY_DIR if directory is None else directory
    values: dict[str, int] = {}
    for name in INOTIFY_MINIMUM:
        try:
            values[name] = int((directory / name).read_text().strip())
        except (OSError, ValueError):
            continue
    return values


def inotify_problem(values: Mapping[str, int]) -> str | None:
    """One line naming every limit below its minimum, with the sysctl line that raises it."""
    low = {k: v for k, v in values.items() if k in INOTIFY_MINIMUM and v < INOTIFY_MINIMUM[k]}
    if not low:
        return None
    found = ", ".join(f"fs.inotify.{k} is {v} (needs {INOTIFY_MINIMUM[k]})" for k, v in low.items())
    fix = " ".join(f"fs.inotify.{k}={INOTIFY_MINIMUM[k]}" for k in low)
    return (
        f"{found}: a 3-node kind cluster with followed logs runs out of inotify; "
        f"raise it with: sudo sysctl -w {fix}"
    )


# kind v0.33.0 published E2E_NODE_IMAGE (an image is built for the kind release that lists
# it), and since v0.24.0 its default network (kindnet) enforces NetworkPolicy.
KIND_MINIMUM = (0, 33, 0)
# `kind version`: "kind v0.33.0 go1.24.2 linux/amd64", a build from source
# "kind v0.34.0-alpha.12+0123456789abcd go1.25.1 darwin/arm64", before v0.6 a bare "v0.5.1".
KIND_VERSION = re.compile(r"(?:^|\s)v(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(?:\+\S*)?(?=\s|$)")


def parse_kind_version(output: str) -> tuple[int, int, int, str] | None:
    """(major, minor, patch, pre-release) from `kind version`; None when it names none."""
    found = KIND_VERSION.search(output)
    if found is None:
        return None
    return int(found[1]), int(found[2]), int(found[3]), (found[4] or "").lstrip("-")


def kind_version_problem(command: str, output: str) -> str | None:
    """kind older than KIND_MINIMUM (a pre-release comes before its release), or a version
    that cannot be read; None when new enough."""
    minimum = "v" + ".".join(map(str, KIND_MINIMUM))
    fix = (
        f"install kind {minimum} or later: `KIND_VERSION={minimum} bash tests/e2e/install-kind.sh "
        ".tools/bin` (then put .tools/bin first on PATH, or set KIND=.tools/bin/kind), or "
        "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
    )
    version = parse_kind_version(output)
    if version is None:
        first = output.strip().splitlines()[0] if output.strip() else "no output"
        return f"cannot read the version of kind ({command}: `kind version` said {first!r}): {fix}"
    release, pre = version[:3], version[3]
    if release > KIND_MINIMUM or (release == KIND_MINIMUM and not pre):
        return None
    shown = "v" + ".".join(map(str, release)) + (f"-{pre}" if pre else "")
    return (
        f"kind {shown} ({command}) is older than {minimum}: E2E_NODE_IMAGE is published for "
        f"{minimum}, and older kind versions cannot be relied on to run it; {fix}"
    )


# The Kubernetes version in a node image's tag: kindest/node:v1.34.11@sha256:...
NODE_VERSION = re.compile(r":(v(\d+)\.(\d+)\.\d+)(?:@|$)")


def kubectl_skew_problem(command: str, version_json: str, node_image: str) -> str | None:
    """kubectl (`version --client -o json`'s output) more than one minor version from the
    node image's Kubernetes; None when within, or when the image names no version (kind's
    default image: not known here)."""
    node = NODE_VERSION.search(node_image)
    if node is None:
        return None
    node_major, node_minor = int(node[2]), int(node[3])
    fix = (
        f"the default E2E_KUBECTL is kubectl {node[1]} in .tools/bin (make e2e-kubectl "
        "installs it), or set E2E_KUBECTL to a kubectl "
        f"{node_major}.{node_minor - 1}-{node_major}.{node_minor + 1}"
    )
    try:
        client = json.loads(version_json)["clientVersion"]
        major, minor = int(client["major"]), int(str(client["minor"]).rstrip("+"))
        shown = client.get("gitVersion", f"v{major}.{minor}")
    except (ValueError, KeyError, TypeError):
        return f"cannot read the version of kubectl ({command}): {fix}"
    if major == node_major and abs(minor - node_minor) <= 1:
        return None
    return (
        f"kubectl {shown} ({command}) is too far from the cluster's Kubernetes "
        f"{node_major}.{node_minor} (E2E_NODE_IMAGE): kubectl works within one minor version "
        f"of its API server; {fix}"
    )


def problems(tools: Sequence[Tool], docker_info: tuple[int, str] | None) -> list[str]:
    """Every problem, one line each: missing tools first, then the Docker daemon."""
    lines = [t.problem for t in tools if t.problem]
    if docker_info is not None:
        daemon = docker_daemon_problem(*docker_info)
        if daemon:
            lines.append(daemon)
    return lines


def _docker_info(command: str) -> tuple[int, str]:
    try:
        done = subprocess.run(
            [command, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, f"{type(exc).__name__}: {exc}"
    return done.returncode, done.stdout + done.stderr


def _kind_version(command: str) -> str:
    try:
        done = subprocess.run(
            [command, "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    return done.stdout + done.stderr


def _kubectl_version(command: str) -> str:
    try:
        done = subprocess.run(
            [command, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    return done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    tools = locate(parse_tools(args or list(INSTALL_HINTS)))
    docker = next((t for t in tools if t.name == "docker" and t.path), None)
    found = problems(tools, _docker_info(docker.path) if docker and docker.path else None)
    kind = next((t for t in tools if t.name == "kind" and t.path), None)
    if kind and kind.path:
        too_old = kind_version_problem(kind.command, _kind_version(kind.path))
        if too_old:
            found.append(too_old)
    kubectl = next((t for t in tools if t.name == "kubectl" and t.path), None)
    node_image = os.environ.get("E2E_NODE_IMAGE", "")
    if kubectl and kubectl.path and node_image:
        skew = kubectl_skew_problem(kubectl.command, _kubectl_version(kubectl.path), node_image)
        if skew:
            found.append(skew)
    helm = next((t for t in tools if t.name == "helm" and t.path), None)
    notes: dict[str, str] = {}
    if helm and helm.path:
        try:
            flag = rollback_flag_of(helm.command, version_output(helm.path))
            notes["helm"] = f" (a failed upgrade rolls back with {flag})"
        except HelmVersionError as exc:
            found.append(str(exc))
    inotify = inotify_problem(read_inotify(Path(os.environ.get("E2E_INOTIFY_DIR") or INOTIFY_DIR)))
    if inotify:
        found.append(inotify)
    for tool in tools:
        if tool.path:
            print(f"ok       {tool.name:<8} {tool.path}{notes.get(tool.name, '')}")
    for line in found:
        print(f"PROBLEM  {line}")
    if found:
        print(f"make e2e needs {', '.join(INSTALL_HINTS)}: fix the problems above and run it again")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
