"""One trace across two real services: frontend -> backend through GET /api/downstream,
exported to a real OTLP receiver, with the backend's database and Redis spans; and the
faults: a backend that is down (refused, or not connected within the connect timeout) is
a 502, a silent one a 504 at the read timeout; the client reads a fixed text, the log line
the reason."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tools.testbed.otlp_receiver import OtlpReceiver
from tools.testbed.servers import RedisServer, ServiceProcess
from tools.testbed.support import free_port, unaccepting_port, wait_for

pytestmark = pytest.mark.integration
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
ITEM_NAME = "a name that must stay out of span attributes"
SERVER, CLIENT = 2, 3  # OTLP span kinds


def otlp_env(otlp: OtlpReceiver, name: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": name,
        "WEB_CONCURRENCY": "1",
    }


@pytest.fixture(scope="module")
def backend(otlp: OtlpReceiver, redis_server: RedisServer) -> Iterator[ServiceProcess]:
    env = {**otlp_env(otlp, "backend"), "REDIS_URL": redis_server.url}
    service = ServiceProcess(env=env).start(wait="/health/ready")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def frontend(otlp: OtlpReceiver, backend: ServiceProcess) -> Iterator[ServiceProcess]:
    env = {**otlp_env(otlp, "frontend"), "DOWNSTREAM_URL": backend.url}
    service = ServiceProcess(env=env).start(wait="/health/ready")
    yield service
    service.stop()


def test_one_trace_from_the_caller_through_both_services(
    frontend: ServiceProcess, backend: ServiceProcess, otlp: OtlpReceiver
) -> None:
    item = httpx.post(f"{backend.url}/api/items", json={"name": ITEM_NAME}).json()["id"]
    response = httpx.get(
        f"{frontend.url}/api/downstream",
        params={"item_id": item},
        headers={"traceparent": TRACEPARENT, "x-request-id": "chain-1"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["downstream_status"] == 200
    assert response.json()["downstream"]["name"] == ITEM_NAME

    # Frontend server -> client -> backend server -> Redis and database children.
    def spans_arrived() -> bool:
        names = {span["name"] for span in otlp.spans_for(TRACE_ID)}
        return {"GET /api/downstream", "GET /api/items/{item_id}", "SELECT items"} <= names

    wait_for(spans_arrived, 15, what="both services' spans at the receiver")
    spans = otlp.spans_for(TRACE_ID)
    by_id = {span["span_id"]: span for span in spans}
    [front] = [s for s in spans if s["name"] == "GET /api/downstream"]
    [call] = [s for s in spans if s["kind"] == CLIENT and "url.full" in s["attributes"]]
    [back] = [s for s in spans if s["name"] == "GET /api/items/{item_id}"]
    assert front["resource"]["service.name"] == "frontend" and front["kind"] == SERVER
    assert front["parent_span_id"] == CALLER_SPAN_ID
    assert call["parent_span_id"] == front["span_id"]
    assert back["parent_span_id"] == call["span_id"] and back["kind"] == SERVER
    assert back["resource"]["service.name"] == "backend"
    children = [s for s in spans if s["parent_span_id"] == back["span_id"]]
    systems = {s["attributes"]["db.system.name"].string_value for s in children}
    assert systems == {"sqlite", "redis"}, [s["name"] for s in children]
    for span in children:
        assert span["kind"] == CLIENT
        assert ITEM_NAME not in str(span["attributes"]), span
        assert by_id.get(span["parent_span_id"]) is back

    # The same trace id and request id in both services' access lines.
    for service, path in ((frontend, "/api/downstream"), (backend, f"/api/items/{item}")):
        line = service.wait_for_event("request_completed", path=path, trace_id=TRACE_ID)
        assert line["request_id"] == "chain-1"


def test_without_downstream_url_the_route_is_absent(backend: ServiceProcess) -> None:
    response = httpx.get(f"{backend.url}/api/downstream")
    assert response.status_code == 404
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_a_stopped_backend_is_a_502_within_the_connect_timeout() -> None:
    service = ServiceProcess(
        env={"DOWNSTREAM_URL": f"http://127.0.0.1:{free_port()}", "WEB_CONCURRENCY": "1"}
    ).start()
    try:
        started = time.monotonic()
        response = httpx.get(f"{service.url}/api/downstream", timeout=30)
        elapsed = time.monotonic() - started
    finally:
        service.stop()
    assert response.status_code == 502, response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.json()["detail"] == "downstream unavailable"
    assert elapsed < 1.0 + 3, elapsed  # refused at once; the connect timeout is 1 s


def test_a_backend_that_never_accepts_is_a_502_at_the_connect_timeout() -> None:
    """Connecting hangs (a full accept queue): the connect timeout's 502, not a 504."""
    with unaccepting_port() as port:
        service = ServiceProcess(
            env={"DOWNSTREAM_URL": f"http://127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
        ).start()
        try:
            started = time.monotonic()
            response = httpx.get(f"{service.url}/api/downstream", timeout=30)
            elapsed = time.monotonic() - started
            line = service.wait_for_event("downstream_unavailable", status_code=502)
        finally:
            service.stop()
    assert response.status_code == 502, response.text
    assert response.json()["detail"] == "downstream unavailable"
    assert 1.0 <= elapsed < 1.0 + 3, elapsed
    assert line["error"].startswith(f"GET http://127.0.0.1:{port}/api/ping: ConnectTimeout")


def test_a_silent_backend_is_a_504_at_the_read_timeout() -> None:
    """A backend that accepts the connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepting.start()
    service = ServiceProcess(
        env={
            "DOWNSTREAM_URL": f"http://127.0.0.1:{listener.getsockname()[1]}",
            "DOWNSTREAM_TIMEOUT_SECONDS": "1",
            "WEB_CONCURRENCY": "1",
        }
    ).start()
    try:
        started = time.monotonic()
        response = httpx.get(f"{service.url}/api/downstream", timeout=30)
        elapsed = time.monotonic() - started
    finally:
        service.stop()
        for connection in held:
            connection.close()
        listener.close()
    assert response.status_code == 504, response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.json()["detail"] == "downstream timed out"
    assert 1.0 <= elapsed < 1.0 + 5, elapsed
