"""GET /version, X-App-Version, and /metrics absent from the API port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from service.config import load_settings
from service.main import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/test.sqlite3",
            "APP_VERSION": "1.4.0",
            "APP_REVISION": "0a1b2c3",
        }
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_version_route_and_header(client: TestClient) -> None:
    response = client.get("/version")
    assert response.json() == {"version": "1.4.0", "revision": "0a1b2c3"}
    assert response.headers["x-app-version"] == "1.4.0"
    assert client.get("/api/nothing-here").headers["x-app-version"] == "1.4.0"


def test_metrics_is_not_served_on_the_api_port(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_unmatched_urls_add_no_label_values(client: TestClient) -> None:
    client.get("/api/ping")
    for n in range(20):
        assert client.get(f"/random/{n}/x").status_code == 404
    text = generate_latest(client.app.state.metrics.registry).decode()  # type: ignore[attr-defined]
    routes = {
        line.split('http_route="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_count")
    }
    assert routes == {"", "/api/ping"}
    assert "random" not in text


def test_metrics_off(tmp_path: Path) -> None:
    for env in ({"METRICS_ENABLED": "false"}, {"OBSERVABILITY": "off"}):
        settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3", **env})
        assert create_app(settings).state.metrics is None
