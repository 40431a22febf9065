"""The image's build identity and its /metrics port, read-only with /tmp as its only tmpfs."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.container.dockerutil import Docker, get, wait_http
from tests.container.test_image import project_version
from tools.testbed.support import free_port

pytestmark = pytest.mark.container


def test_version_and_metrics_port_on_a_read_only_root(docker: Docker, app_image: str) -> None:
    name = f"fastapi-app-ct-metrics-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    api, metrics = free_port(), free_port()
    env = docker.inspect(app_image)["Config"]["Env"]
    assert f"APP_VERSION={project_version()}" in env
    try:
        docker(
            "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
            "-p", f"127.0.0.1:{api}:8000", "-p", f"127.0.0.1:{metrics}:9464", app_image,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{api}/health/live", 60)
        assert get(f"http://127.0.0.1:{api}/version").json() == {
            "version": project_version(),
            "revision": "unknown",  # built without APP_REVISION, as the test fixture does
        }
        assert get(f"http://127.0.0.1:{api}/metrics").status_code == 404
        text = wait_http(f"http://127.0.0.1:{metrics}/metrics", 30).text
        assert f'api_build_info{{revision="unknown",version="{project_version()}"}} 1.0' in text
        assert 'http_route="/health/live"' in text
    finally:
        docker.remove(name)
