"""The throwaway PostgreSQL and Redis with a mirror's images (E2E_POSTGRES_IMAGE,
E2E_REDIS_IMAGE), as make e2e-deps and the prod-overlay test apply them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e import backing
from tests.e2e.settings import BACKING_MANIFEST

REPO_ROOT = Path(__file__).resolve().parents[2]


def images(text: str) -> dict[str, str]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "Deployment"
    }


def test_without_variables_the_manifest_is_unchanged() -> None:
    assert backing.images_from_env({}) == {}
    original = [d for d in yaml.safe_load_all(BACKING_MANIFEST.read_text()) if d]
    assert list(yaml.safe_load_all(backing.render({}))) == original


def test_the_variables_replace_each_image() -> None:
    env = {"E2E_POSTGRES_IMAGE": "mirror.invalid/postgres:17-alpine", "E2E_REDIS_IMAGE": " "}
    chosen = backing.images_from_env(env)
    assert chosen == {"postgres": "mirror.invalid/postgres:17-alpine"}
    rendered = images(backing.render(chosen))
    assert rendered["postgres"] == "mirror.invalid/postgres:17-alpine"
    assert rendered["redis"] == images(BACKING_MANIFEST.read_text())["redis"]
    with pytest.raises(ValueError, match="mysql"):
        backing.render({"mysql": "x"})


def test_main_prints_the_manifest_with_the_environment_images() -> None:
    env = {"E2E_REDIS_IMAGE": "mirror.invalid/redis:7-alpine", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.backing"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert images(done.stdout)["redis"] == "mirror.invalid/redis:7-alpine"


def test_every_container_starts_from_the_image_loaded_on_the_nodes() -> None:
    for doc in yaml.safe_load_all(backing.render({"redis": "mirror.invalid/redis:7"})):
        if doc and doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                assert container["imagePullPolicy"] == "IfNotPresent", container["name"]


def test_load_commands_pull_only_what_is_missing_and_save_for_the_nodes_platform() -> None:
    archive = Path("var/e2e/backing-images-c.tar")
    images = ["mirror.invalid/postgres:17-alpine", "redis:7-alpine"]
    commands = backing.load_commands(
        images, "linux/arm64", archive, lambda image: image.startswith("redis"),
        docker="/bin/docker", kind="/bin/kind", cluster="c",
    )  # fmt: skip
    assert commands == [
        ["/bin/docker", "pull", "--platform", "linux/arm64", "mirror.invalid/postgres:17-alpine"],
        ["/bin/docker", "save", "--platform", "linux/arm64", "-o", str(archive), *images],
        ["/bin/kind", "load", "image-archive", str(archive), "--name", "c"],
    ]
    rendered = backing.render({"postgres": images[0]})
    assert backing.manifest_images(rendered) == images


# Stand-ins for docker and kind: log their arguments; docker has no image named *missing*,
# and fails `save` when STUB_SAVE_FAILS is set.
STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $1 $2" in
  "docker version "*) echo "linux/arm64" ;;
  "docker image inspect") case "$*" in *missing*) exit 1 ;; esac ;;
  "docker save "*) [ -z "${STUB_SAVE_FAILS:-}" ] || exit 1; touch "$6" ;;
esac
exit 0
"""


def run_load(tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    for name in ("docker", "kind"):
        (tmp_path / name).write_text(STUB)
        (tmp_path / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": "/usr/bin:/bin", "STUB_LOG": str(log), "DOCKER": str(tmp_path / "docker"),
        "KIND": str(tmp_path / "kind"), "KIND_CLUSTER": "e2e", "E2E_ARTIFACTS": str(tmp_path),
        "E2E_POSTGRES_IMAGE": "mirror.invalid/pg:missing", **extra,
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.backing", "load"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done, log.read_text().splitlines() if log.exists() else []


def test_load_pulls_once_saves_for_the_daemons_platform_and_loads_into_kind(
    tmp_path: Path,
) -> None:
    done, calls = run_load(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    archive = tmp_path / "backing-images-e2e.tar"
    assert calls == [
        "docker version --format {{.Server.Os}}/{{.Server.Arch}}",
        "docker image inspect --format {{.Id}} mirror.invalid/pg:missing",
        "docker image inspect --format {{.Id}} redis:7-alpine",
        "docker pull --platform linux/arm64 mirror.invalid/pg:missing",
        f"docker save --platform linux/arm64 -o {archive} mirror.invalid/pg:missing redis:7-alpine",
        f"kind load image-archive {archive} --name e2e",
    ]
    assert not archive.exists()  # the archive goes once loaded


def test_load_for_a_given_platform_and_a_failed_save_says_what_docker_needs(
    tmp_path: Path,
) -> None:
    done, calls = run_load(tmp_path, E2E_PLATFORM="linux/amd64", STUB_SAVE_FAILS="1")
    assert done.returncode == 1
    assert "docker save --platform` failed (--platform needs Docker 28 or later)" in done.stderr
    assert not any(c.startswith(("docker version", "kind")) for c in calls), calls
    assert any(c.startswith("docker save --platform linux/amd64 ") for c in calls), calls
    assert not (tmp_path / "backing-images-e2e.tar").exists()
