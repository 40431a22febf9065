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
