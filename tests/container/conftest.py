"""Fixtures for the container tests: a docker daemon, the base images, the app image.

With no registry, the base, PostgreSQL and Redis images are the local stand-ins built by
standins/build.sh (cached between runs). A machine with a registry may point the tests at
the real images instead: TEST_BASE_IMAGE, TEST_POSTGRES_IMAGE, TEST_REDIS_IMAGE.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.dockerutil import STANDINS_DIR, Docker, buildkit_docker, run
from tests.support import missing, require_tool
from tools.testbed.support import REPO_ROOT

STANDIN_PREFIX = "fastapi-app-standin"
APP_TEST_IMAGE = "fastapi-app:container-test"
STANDINS_BUILD_TIMEOUT_S = 1200
APP_BUILD_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-timeout counts a test's set-up, and the first test to ask for the images
    waits for their builds: it gets both builds' timeouts on top of its own, so a build's
    own timeout fires first and the failure shows the build's output."""
    for item in items:
        if {"base_images", "app_image"} & set(getattr(item, "fixturenames", ())):
            marker = item.get_closest_marker("timeout")
            own = float(marker.args[0] if marker else item.config.getini("timeout"))
            builds = STANDINS_BUILD_TIMEOUT_S + APP_BUILD_TIMEOUT_S
            item.add_marker(pytest.mark.timeout(own + builds), append=False)


def report(config: pytest.Config, text: str) -> None:
    """Print past pytest's output capture: figures the run should always show."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n[container] {text}")


@dataclass(frozen=True)
class BaseImages:
    python: str
    postgres: str
    redis: str


@pytest.fixture(scope="session")
def docker() -> Docker:
    require_tool("docker", "apt-get install docker.io")
    client = Docker(buildkit_docker())
    info = client("info", "--format", "{{.ServerVersion}}", check=False, timeout_s=30)
    if info.returncode != 0 or not info.stdout.strip():
        missing("a running docker daemon (bash .ci/steps/20-dockerd.sh starts one)")
    return client


@pytest.fixture(scope="session")
def base_images(docker: Docker, pytestconfig: pytest.Config) -> BaseImages:
    images = BaseImages(
        python=os.environ.get("TEST_BASE_IMAGE", f"{STANDIN_PREFIX}/python:3.11"),
        postgres=os.environ.get("TEST_POSTGRES_IMAGE", f"{STANDIN_PREFIX}/postgres:15"),
        redis=os.environ.get("TEST_REDIS_IMAGE", f"{STANDIN_PREFIX}/redis:7"),
    )
    if any(name.startswith(STANDIN_PREFIX + "/") for name in vars(images).values()):
        # build.sh reuses images whose content hash matches: seconds when cached.
        require_tool("debootstrap", "apt-get install debootstrap")
        if os.geteuid() != 0:
            missing("root, to debootstrap the stand-in images (or set TEST_*_IMAGE)")
        started = time.monotonic()
        run(["bash", str(STANDINS_DIR / "build.sh")], timeout_s=STANDINS_BUILD_TIMEOUT_S)
        report(pytestconfig, f"stand-in images ready in {time.monotonic() - started:.1f} s")
    for name in vars(images).values():
        assert docker.image_exists(name), f"image {name} is not there"
    return images


def pip_secret_args(out_dir: Path) -> list[str]:
    """This machine's pip settings as BuildKit secret args (empty on a plain machine)."""
    script = STANDINS_DIR / "pip_secrets.py"
    line = run([str(REPO_ROOT / ".venv/bin/python"), str(script), str(out_dir)]).stdout
    return line.split()


def build_app_image(docker: Docker, base: str, tag: str, secrets_dir: Path) -> float:
    """Build the app image the way `make image` does; return the seconds it took."""
    started = time.monotonic()
    run(
        [
            docker.cli,
            "build",
            *pip_secret_args(secrets_dir),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            ".",
        ],
        env={"DOCKER_BUILDKIT": "1"},
        timeout_s=APP_BUILD_TIMEOUT_S,
    )
    return time.monotonic() - started


@pytest.fixture(scope="session")
def app_image(
    docker: Docker,
    base_images: BaseImages,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> str:
    seconds = build_app_image(
        docker, base_images.python, APP_TEST_IMAGE, tmp_path_factory.mktemp("pip-secrets")
    )
    report(pytestconfig, f"{APP_TEST_IMAGE} built in {seconds:.1f} s on {base_images.python}")
    return APP_TEST_IMAGE
