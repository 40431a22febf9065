"""FaultMiddleware and its settings: off by default (no middleware at all), accepted only
with DEMO_ROUTES=true, and then /api/* requests are delayed and a share of them answer 500
in the one error shape; other paths are never touched."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from service.config import SettingsError, load_settings
from service.main import create_app
from service.server.faults import FAULT_DETAIL, FaultMiddleware


def test_off_by_default_and_no_middleware() -> None:
    settings = load_settings({})
    assert (settings.fault_error_ratio, settings.fault_delay_ms) == (0.0, 0)
    assert not settings.faults_on
    app = create_app(load_settings({"DEMO_ROUTES": "true"}))
    assert FaultMiddleware not in [m.cls for m in app.user_middleware]  # type: ignore[comparison-overlap]
    faulty = create_app(load_settings({"DEMO_ROUTES": "true", "FAULT_DELAY_MS": "1"}))
    assert FaultMiddleware in [m.cls for m in faulty.user_middleware]  # type: ignore[comparison-overlap]


@pytest.mark.parametrize("name", ["FAULT_ERROR_RATIO", "FAULT_DELAY_MS"])
def test_needs_demo_routes(name: str) -> None:
    with pytest.raises(SettingsError, match=f"^invalid environment variable {name}: .*DEMO_ROUTES"):
        load_settings({name: "1"})
    assert load_settings({name: "1", "DEMO_ROUTES": "true"}).faults_on


@pytest.mark.parametrize(
    ("name", "value"),
    [("FAULT_ERROR_RATIO", "1.5"), ("FAULT_ERROR_RATIO", "-0.1"), ("FAULT_DELAY_MS", "-1")],
)
def test_out_of_range_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^invalid environment variable {name}: "):
        load_settings({name: value, "DEMO_ROUTES": "true"})


def faulty_client(**env: str) -> TestClient:
    settings = load_settings({"DEMO_ROUTES": "true", "OBSERVABILITY": "full", **env})
    return TestClient(create_app(settings))


def test_every_api_request_fails_at_ratio_one() -> None:
    with faulty_client(FAULT_ERROR_RATIO="1") as client:
        response = client.get("/api/ping")
        assert response.status_code == 500
        body = response.json()
        assert body == {"detail": FAULT_DETAIL, "request_id": response.headers["x-request-id"]}
        assert response.headers["x-app-version"] == load_settings({}).app_version
        assert client.get("/health/live").status_code == 200  # not under /api/
        assert client.get("/version").status_code == 200


def test_the_ratio_is_a_share_of_requests() -> None:
    draws = iter([0.05, 0.5, 0.15, 0.95])

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(FaultMiddleware(ok, error_ratio=0.2, delay_ms=0, draw=lambda: next(draws)))
    assert [client.get("/api/x").status_code for _ in range(4)] == [500, 200, 500, 200]


def test_delay_is_added_to_api_requests_only() -> None:
    with faulty_client(FAULT_DELAY_MS="300") as client:
        start = time.monotonic()
        assert client.get("/api/ping").status_code == 200
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        assert client.get("/health/live").status_code == 200
        assert time.monotonic() - start < 0.3
