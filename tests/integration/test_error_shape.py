"""Every error answer of the real server has the one shape: {"detail": ..., "request_id":
<the X-Request-ID of that response>, ...}, whichever layer answers it: the HTTP parser
(408/414/431), the middleware (413, drain 503, 500), or the app's handlers (401, 404,
405, 408, 413, 422, database 503)."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tools.testbed.servers import ServiceProcess
from tools.testbed.support import free_port

pytestmark = pytest.mark.integration
BODY_LIMIT = 1000
# The server's head and body read timeouts are 10 s: a stalled request gets its 408 then.
STALL_WAIT_SECONDS = 30
UNKNOWN_TOKEN = {"Authorization": "Bearer not-a-known-token"}
JSON_CONTENT = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        env={"MAX_REQUEST_BODY_BYTES": str(BODY_LIMIT), "API_TOKENS": "good-token=alice"}
    ).start(wait="/health/ready")
    yield svc
    svc.stop()


def raw_exchange(port: int, data: bytes, timeout_s: float = 10) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes, read until the server closes; the status, headers and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_error_shape(status: int, headers: Any, body: Any, expected_status: int) -> None:
    assert status == expected_status, body
    assert headers["content-type"].startswith("application/json")
    assert "detail" in body, body
    assert body["request_id"], body
    assert body["request_id"] == headers["x-request-id"], (body, dict(headers))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    [
        ("POST", "/api/items", {"json": {"name": "x"}, "headers": UNKNOWN_TOKEN}, 401),
        ("GET", "/no-such-route", {}, 404),
        ("GET", "/api/items/2000000000", {}, 404),
        ("DELETE", "/api/items", {}, 405),
        ("GET", "/api/items", {"params": {"limit": "many"}}, 422),
        ("POST", "/api/items", {"content": b"{", "headers": JSON_CONTENT}, 422),
        ("POST", "/api/items", {"json": {"name": "x" * BODY_LIMIT}}, 413),
        ("GET", "/api/error", {}, 500),
    ],
)  # fmt: skip
def test_app_errors_carry_the_request_id(
    service: ServiceProcess, method: str, path: str, kwargs: dict[str, Any], expected: int
) -> None:
    response = httpx.request(method, f"{service.url}{path}", **kwargs)
    assert_error_shape(response.status_code, response.headers, response.json(), expected)


def test_an_incoming_request_id_is_the_one_in_the_body(service: ServiceProcess) -> None:
    response = httpx.get(f"{service.url}/no-such-route", headers={"X-Request-ID": "abc-123"})
    assert response.json()["request_id"] == "abc-123" == response.headers["x-request-id"]


def test_a_streamed_body_over_the_limit_carries_the_request_id(service: ServiceProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        yield b"x" * (BODY_LIMIT * 2)
        yield b'"}'

    response = httpx.post(f"{service.url}/api/items", content=chunks(), headers=JSON_CONTENT)
    assert_error_shape(response.status_code, response.headers, response.json(), 413)


def test_refusals_of_the_http_parser_carry_the_request_id(service: ServiceProcess) -> None:
    long_url = b"GET /api/ping?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    assert_error_shape(*raw_exchange(service.port, long_url), 414)
    many_headers = b"".join(b"X-H%d: v\r\n" % n for n in range(120))
    request = b"GET /api/ping HTTP/1.1\r\nHost: t\r\n" + many_headers + b"\r\n"
    assert_error_shape(*raw_exchange(service.port, request), 431)


def test_stalled_requests_get_408_with_the_request_id(service: ServiceProcess) -> None:
    """A head that stops arriving (the parser's 408) and a body that stops arriving (the
    app's 408), side by side: each waits the server's 10 s read timeout."""
    stalled_head = b"GET /api/ping HTTP/1.1\r\nHost: t\r\n"
    stalled_body = (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    with ThreadPoolExecutor(2) as pool:
        head = pool.submit(raw_exchange, service.port, stalled_head, STALL_WAIT_SECONDS)
        body = pool.submit(raw_exchange, service.port, stalled_body, STALL_WAIT_SECONDS)
        assert_error_shape(*head.result(), 408)
        assert_error_shape(*body.result(), 408)


def test_database_and_drain_503s_carry_the_request_id(tmp_path: Any) -> None:
    nothing_listens = free_port()
    svc = ServiceProcess(
        env={
            "DATABASE_URL": f"postgresql://app@127.0.0.1:{nothing_listens}/app",
            "GRACE_PERIOD_SECONDS": "20",
            "WEB_CONCURRENCY": "1",
        },
        tmp_dir=tmp_path,
    ).start(wait="/health/live")
    try:
        response = httpx.get(f"{svc.url}/api/items", timeout=10)
        assert_error_shape(response.status_code, response.headers, response.json(), 503)
        assert response.headers["retry-after"] == "1"

        # A request in flight keeps the worker draining; new requests then get the 503.
        in_flight = threading.Thread(
            target=httpx.get, args=(f"{svc.url}/api/long-task?seconds=6",), kwargs={"timeout": 30}
        )
        in_flight.start()
        svc.wait_in_flight(1)
        svc.signal(signal.SIGTERM)
        svc.wait_for_event("rejecting_new_requests", timeout_s=10)
        response = httpx.get(f"{svc.url}/api/ping", timeout=10)
        assert_error_shape(response.status_code, response.headers, response.json(), 503)
        assert response.json()["retry_after"] == 20 == int(response.headers["retry-after"])
        in_flight.join(30)
        assert svc.wait(30) == 0
    finally:
        svc.stop()
