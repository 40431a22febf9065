"""docker-compose.yml with Compose v1.29 (Debian's docker-compose) and Compose v2: its
resolved configuration, then the real stack on the stand-in images."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.container.conftest import BaseImages, report
from tests.container.dockerutil import TOOLS_BIN, Docker, get, run, wait_http
from tests.support import missing
from tools.testbed.support import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.container

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
CHART_VALUES = REPO_ROOT / "deploy/helm/fastapi-app/values.yaml"
# Compose's own defaults for the shutdown numbers (docker-compose.yml's ${VAR:-default}).
DEFAULT_GRACE_SECONDS = 30
DEFAULT_DELAY_SECONDS = 0
# docker-compose.yml has no default for it (${POSTGRES_PASSWORD:?...}): every run sets one.
PASSWORD = {"POSTGRES_PASSWORD": "compose-test-password"}


@dataclass(frozen=True)
class Compose:
    version: str  # "v1" or "v2"
    command: list[str]

    def __call__(
        self, project: str, *args: str, env: dict[str, str], timeout_s: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [*self.command, "-f", str(COMPOSE_FILE), "-p", project, *args],
            env=env,
            timeout_s=timeout_s,
        )


def find_compose(version: str) -> Compose:
    if version == "v1":
        path = shutil.which("docker-compose")
        if path:
            out = run([path, "version", "--short"], check=False).stdout.strip()
            if out.startswith("1."):
                return Compose("v1", [path])
        missing("Compose v1.29 as docker-compose (apt-get install docker-compose)")
    candidates = [["docker", "compose"], [str(TOOLS_BIN / "docker-compose-v2")]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        out = run([*command, "version", "--short"], check=False).stdout.strip()
        if re.match(r"v?2\.", out):
            return Compose("v2", command)
    missing("Compose v2 (bash tests/container/standins/install-compose-v2.sh)")
    raise AssertionError  # unreachable


@pytest.fixture(params=["v1", "v2"])
def compose(request: pytest.FixtureRequest) -> Compose:
    return find_compose(str(request.param))


def stack_env(app_image: str, images: BaseImages, port: int) -> dict[str, str]:
    return {
        "APP_IMAGE": app_image,
        "BASE_IMAGE": images.python,
        "POSTGRES_IMAGE": images.postgres,
        "REDIS_IMAGE": images.redis,
        "APP_PORT": str(port),
        **PASSWORD,
        # Compose v1 would otherwise build with the legacy builder, which cannot.
        "COMPOSE_DOCKER_CLI_BUILD": "1",
        "DOCKER_BUILDKIT": "1",
    }


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text)):
        total += float(amount) * units[unit]
    return total


def chart_cleanup_seconds() -> int | None:
    if not CHART_VALUES.exists():
        return None
    values = yaml.safe_load(CHART_VALUES.read_text())
    return int(values["shutdown"]["cleanupSeconds"])


def test_compose_config_resolves(compose: Compose) -> None:
    env = {
        "APP_IMAGE": "local/app:1",
        "BASE_IMAGE": "local/python:1",
        "POSTGRES_IMAGE": "local/postgres:1",
        "REDIS_IMAGE": "local/redis:1",
        **PASSWORD,
    }
    project = f"fastapi-app-config-{compose.version}"
    config: dict[str, Any] = yaml.safe_load(compose(project, "config", env=env).stdout)
    services = config["services"]
    assert {"app", "postgres", "redis"} <= set(services)
    app = services["app"]
    assert app["image"] == "local/app:1"
    assert app["build"]["args"]["BASE_IMAGE"] == "local/python:1"
    assert services["postgres"]["image"] == "local/postgres:1"
    assert services["redis"]["image"] == "local/redis:1"
    depends = app["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    # The schema before the app: a one-shot migrate service of the same image.
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["image"] == "local/app:1"
    assert services["migrate"]["command"] == ["python", "-m", "service.data.migrate"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    # The app's health check is its image's HEALTHCHECK (test_image_metadata).
    assert "healthcheck" not in app or not app["healthcheck"].get("disable")
    assert app["read_only"] is True
    volume = services["postgres"]["volumes"][0]
    source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    assert source == "pgdata" and "pgdata" in config["volumes"]
    environment = app["environment"]
    assert environment["GRACE_PERIOD_SECONDS"] == str(DEFAULT_GRACE_SECONDS)
    assert environment["SHUTDOWN_DELAY_SECONDS"] == str(DEFAULT_DELAY_SECONDS)
    # stop_grace_period = delay + grace + the chart's cleanup budget + its 5 s margin (its T
    # without preStop).
    cleanup = chart_cleanup_seconds()
    stop_s = duration_seconds(app["stop_grace_period"])
    if cleanup is not None:
        assert stop_s == DEFAULT_DELAY_SECONDS + DEFAULT_GRACE_SECONDS + cleanup + 5
    assert stop_s > DEFAULT_DELAY_SECONDS + DEFAULT_GRACE_SECONDS


def published(port: Any) -> tuple[str, str, int]:
    """(host address, host port, container port) of a `ports` entry in either Compose's
    resolved form: v2's long syntax, v1's "ip:host:container/proto" string."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["published"]), int(port["target"])
    host_ip, host_port, container = str(port).split("/")[0].rsplit(":", 2)
    return host_ip, host_port, int(container)


def test_compose_publishes_on_loopback_only(compose: Compose) -> None:
    env = {"APP_IMAGE": "local/app:1", "COMPOSE_PROFILES": "observability", **PASSWORD}
    project = f"fastapi-app-config-ports-{compose.version}"
    services = yaml.safe_load(compose(project, "config", env=env).stdout)["services"]
    ports = {name: [published(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert ports["app"] == [("127.0.0.1", "8000", 8000)]
    every = [entry for entries in ports.values() for entry in entries]
    # The app, Jaeger's UI and Prometheus's: each on the loopback address only.
    assert {container for _, _, container in every} == {8000, 16686, 9090}
    assert {host_ip for host_ip, _, _ in every} == {"127.0.0.1"}, ports


def test_compose_requires_postgres_password(compose: Compose, tmp_path: Path) -> None:
    """No default password: without one (unset or empty) compose stops and names it; with
    one, the database and the app's DATABASE_URL get it."""
    empty_env_file = tmp_path / "empty.env"  # a developer's .env beside the file must not count
    empty_env_file.write_text("")
    project = f"fastapi-app-config-pw-{compose.version}"
    command = [*compose.command, "-f", str(COMPOSE_FILE), "-p", project]
    command += ["--env-file", str(empty_env_file), "config"]
    unset = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    for env in (unset, {**unset, "POSTGRES_PASSWORD": ""}):
        proc = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert proc.returncode != 0, proc.stdout
        assert "set POSTGRES_PASSWORD" in proc.stderr, proc.stderr
    config = compose(project, "--env-file", str(empty_env_file), "config", env=PASSWORD).stdout
    services = yaml.safe_load(config)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "compose-test-password"
    for name in ("app", "migrate"):
        url = services[name]["environment"]["DATABASE_URL"]
        assert url.startswith("postgresql://app:compose-test-password@postgres:5432/"), url


def test_env_example_documents_every_compose_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    documented = set(
        re.findall(r"^#?\s*([A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M)
    )
    assert used - documented == set()


@pytest.fixture
def project(compose: Compose, docker: Docker) -> Iterator[str]:
    name = f"fastapi-app-ct-{compose.version}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    yield name
    # Whatever the test did, leave nothing behind.
    subprocess.run(
        [*compose.command, "-f", str(COMPOSE_FILE), "-p", name, "down", "-v", "--remove-orphans"],
        cwd=REPO_ROOT,
        env={**os.environ, **PASSWORD},
        capture_output=True,
        timeout=120,
        check=False,
    )


def ready_checks(port: int) -> tuple[int, dict[str, Any]]:
    response = get(f"http://127.0.0.1:{port}/health/ready", timeout_s=10)
    body = response.json()
    assert isinstance(body, dict)
    return response.status_code, body


def test_compose_stack_with_stand_ins(
    compose: Compose,
    project: str,
    docker: Docker,
    app_image: str,
    base_images: BaseImages,
    pytestconfig: pytest.Config,
) -> None:
    port = free_port()
    env = stack_env(app_image, base_images, port)
    compose(project, "up", "-d", "--no-build", env=env)
    app_id = compose(project, "ps", "-q", "app", env=env).stdout.strip()
    docker.wait_healthy(app_id, timeout_s=120)

    body = wait_http(f"http://127.0.0.1:{port}/health/ready", 60).json()
    assert body["checks"]["database"]["healthy"] is True, body
    assert body["checks"]["redis"]["healthy"] is True, body
    assert body["checks"]["schema"]["healthy"] is True, body  # the migrate service ran first

    # PostgreSQL down: readiness says so (503), the app itself stays up.
    compose(project, "stop", "postgres", env=env)
    seen: list[tuple[int, dict[str, Any]]] = []

    def database_down() -> bool:
        try:
            seen[:] = [ready_checks(port)]
        except httpx.HTTPError:
            return False
        return seen[0][0] == 503 and seen[0][1]["checks"]["database"]["healthy"] is False

    wait_for(database_down, 45, interval_s=1, what="readiness 503 with postgres stopped")
    assert seen[0][1]["checks"]["redis"]["healthy"] is True
    assert get(f"http://127.0.0.1:{port}/health/live").status_code == 200

    # And back.
    compose(project, "start", "postgres", env=env)
    body = wait_http(f"http://127.0.0.1:{port}/health/ready", 90).json()
    assert body["checks"]["database"]["healthy"] is True, body

    # `down -v` removes containers, network and the database volume.
    compose(project, "down", "-v", env=env)
    label = f"label=com.docker.compose.project={project}"
    assert docker("ps", "-aq", "--filter", label).stdout.strip() == ""
    assert docker("volume", "ls", "-q", "--filter", label).stdout.strip() == ""
    assert docker("network", "ls", "-q", "--filter", label).stdout.strip() == ""
    report(pytestconfig, f"compose {compose.version}: stack up, postgres stop/start, down -v: ok")


def test_observability_profile_scrapes_the_metrics_port(compose: Compose) -> None:
    env = {"APP_IMAGE": "local/app:1", "PROMETHEUS_IMAGE": "local/prometheus:1", **PASSWORD}
    env["COMPOSE_PROFILES"] = "observability"  # read by Compose v2 and docker-compose >= 1.28
    project = f"fastapi-app-config-obs-{compose.version}"
    config: dict[str, Any] = yaml.safe_load(compose(project, "config", env=env).stdout)
    prometheus = config["services"]["prometheus"]
    assert prometheus["image"] == "local/prometheus:1"
    volume = prometheus["volumes"][0]
    source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    assert source.endswith("deploy/compose/prometheus.yml")
    scrape = yaml.safe_load((REPO_ROOT / "deploy/compose/prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["app:9464"]


def test_observability_profile_runs_a_backend_for_the_downstream_trace(compose: Compose) -> None:
    env = {"APP_IMAGE": "local/app:1", "COMPOSE_PROFILES": "observability", **PASSWORD}
    project = f"fastapi-app-config-backend-{compose.version}"
    config: dict[str, Any] = yaml.safe_load(compose(project, "config", env=env).stdout)
    services = config["services"]
    backend = services["backend"]
    assert backend["image"] == "local/app:1"  # the same image: a second service of the app
    assert backend["environment"]["OTEL_SERVICE_NAME"] == "backend"
    assert backend["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert backend["read_only"] is True and "ports" not in backend  # reached by the app only
    assert services["app"]["environment"]["DOWNSTREAM_URL"] == "http://backend:8000"
    assert {"jaeger", "otel-collector"} <= set(services)
    # Started with the profile only (without it the app's route answers a JSON 502).
    assert backend["profiles"] == ["observability"]
