"""Demo routes (/api/slow, /api/long-task, /api/error) exist only with DEMO_ROUTES=true;
off (the default) they answer 404 like any unknown path and are absent from the OpenAPI
document. A short ADMIN_TOKEN stops the start with one JSON line naming it."""

from __future__ import annotations

import httpx
import pytest

from service.config import MIN_ADMIN_TOKEN_LENGTH, Settings, load_settings
from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.integration
DEMO_PATHS = ("/api/slow", "/api/long-task", "/api/error")


def test_demo_routes_are_off_by_default() -> None:
    assert Settings.model_fields["demo_routes"].default is False
    assert load_settings({}).demo_routes is False


def demo_answers(env: dict[str, str]) -> tuple[dict[str, int], set[str]]:
    service = ServiceProcess(env={"WEB_CONCURRENCY": "1", **env}).start(wait="/health/ready")
    try:
        status = {
            path: httpx.get(service.url + path, params={"ms": 0, "seconds": 0}).status_code
            for path in DEMO_PATHS
        }
        assert httpx.get(f"{service.url}/api/ping").status_code == 200  # never a demo route
        paths = set(httpx.get(f"{service.url}/openapi.json").json()["paths"])
        return status, paths
    finally:
        service.stop()


def test_off_they_answer_404_and_are_not_documented() -> None:
    status, paths = demo_answers({"DEMO_ROUTES": "false"})
    assert status == dict.fromkeys(DEMO_PATHS, 404)
    assert not paths.intersection(DEMO_PATHS) and "/api/items" in paths


def test_on_they_answer() -> None:
    status, paths = demo_answers({"DEMO_ROUTES": "true"})
    assert status == {"/api/slow": 200, "/api/long-task": 200, "/api/error": 500}
    assert set(DEMO_PATHS) <= paths


def test_a_short_admin_token_stops_the_start_with_one_json_line() -> None:
    short = "a" * (MIN_ADMIN_TOKEN_LENGTH - 1)
    service = ServiceProcess(env={"ADMIN_TOKEN": short}).start(wait=None)
    try:
        assert service.wait(30) == 1
    finally:
        service.stop()
    [record] = service.records()
    assert record["error"].startswith("invalid environment variable ADMIN_TOKEN: ")
    assert str(MIN_ADMIN_TOKEN_LENGTH) in record["error"]
    assert short not in service.output()
