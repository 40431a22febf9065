"""A bad release on demand, on the real server: FAULT_ERROR_RATIO answers /api/* with the
JSON 500 (request id, X-App-Version), counted under the route's template; FAULT_DELAY_MS
slows /api/* only; the start logs one fault_injection_on line, and without DEMO_ROUTES the
start stops naming the variable."""

from __future__ import annotations

import time

import httpx
import pytest

from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.integration


def test_error_ratio_one_fails_every_api_request_in_the_error_shape() -> None:
    env = {"FAULT_ERROR_RATIO": "1", "APP_VERSION": "bad-1"}
    with ServiceProcess(env=env).start(wait="/health/ready") as service:
        response = httpx.get(f"{service.url}/api/items/1")
        assert response.status_code == 500
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert response.headers["x-app-version"] == "bad-1"
        assert httpx.get(f"{service.url}/version").status_code == 200
        metrics = httpx.get(service.metrics_url).text
        assert (
            'http_server_request_duration_seconds_count{http_request_method="GET",'
            'http_response_status_code="500",http_route="/api/items/{item_id}"} 1.0'
        ) in metrics
        [line] = service.events("fault_injection_on")  # the master's, not one per worker
        assert (line["error_ratio"], line["delay_ms"], line["level"]) == (1.0, 0, "warning")


def test_delay_slows_api_requests_only() -> None:
    with ServiceProcess(env={"FAULT_DELAY_MS": "400"}).start(wait="/health/ready") as service:
        start = time.monotonic()
        assert httpx.get(f"{service.url}/api/ping").status_code == 200
        assert time.monotonic() - start >= 0.4
        start = time.monotonic()
        assert httpx.get(f"{service.url}/health/live").status_code == 200
        assert time.monotonic() - start < 0.4
        assert service.events("fault_injection_on")[0]["delay_ms"] == 400


def test_no_fault_line_by_default() -> None:
    with ServiceProcess().start(wait="/health/ready") as service:
        assert httpx.get(f"{service.url}/api/ping").status_code == 200
        assert not service.events("fault_injection_on")


@pytest.mark.parametrize("name", ["FAULT_ERROR_RATIO", "FAULT_DELAY_MS"])
def test_without_demo_routes_the_start_stops_naming_the_variable(name: str) -> None:
    service = ServiceProcess(env={"DEMO_ROUTES": "false", name: "1"}).start(wait=None)
    try:
        assert service.wait(30) == 1
    finally:
        service.stop()
    [record] = service.records()
    assert record["error"] == (
        f"invalid environment variable {name}: fault injection needs DEMO_ROUTES=true"
    )
