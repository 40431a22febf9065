"""Oversized requests are refused with 4xx by configured limits: the request head by
BoundedHttpToolsProtocol (service/server/http_limits.py), the body by BodyLimitMiddleware
(MAX_REQUEST_BODY_BYTES)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import gunicorn_conf
from service.config import load_settings
from service.main import create_app
from tests.resilience.harness import RawResponse, parse_response, raw_exchange, request_bytes
from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.resilience
BODY_LIMIT = 65536  # MAX_REQUEST_BODY_BYTES for these tests
LINE = gunicorn_conf.limit_request_line
FIELD = gunicorn_conf.limit_request_field_size
FIELDS = gunicorn_conf.limit_request_fields
HEAD = gunicorn_conf.MAX_REQUEST_HEAD_BYTES


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    svc = ServiceProcess(env={"MAX_REQUEST_BODY_BYTES": str(BODY_LIMIT)}).start()
    yield svc
    svc.stop()


def refused(response: RawResponse, status: int) -> None:
    assert response.status == status, response
    assert response.headers["connection"] == "close"
    body = json.loads(response.body)
    assert body["detail"] and body["request_id"] == response.headers["x-request-id"]


def field(name: bytes, total: int) -> tuple[bytes, bytes]:
    """A header field whose "name: value" is total bytes."""
    return name, b"v" * (total - len(name) - 2)


def test_request_target_limit(service: ServiceProcess) -> None:
    at_limit = "/api/" + "a" * (LINE - 5)
    assert raw_exchange(service.port, request_bytes("GET", at_limit)).status == 404
    refused(raw_exchange(service.port, request_bytes("GET", at_limit + "a")), 414)
    refused(raw_exchange(service.port, request_bytes("GET", "/" + "a" * 1_000_000)), 414)


def test_header_field_count_and_size_limits(service: ServiceProcess) -> None:
    host = 1  # request_bytes sends Host itself
    many = [(b"X-%d" % n, b"1") for n in range(FIELDS - host)]
    assert raw_exchange(service.port, request_bytes("GET", "/api/ping", many)).status == 200
    too_many = [*many, (b"X-Last", b"1")]
    refused(raw_exchange(service.port, request_bytes("GET", "/api/ping", too_many)), 431)

    ok = [field(b"X-Big", FIELD)]
    assert raw_exchange(service.port, request_bytes("GET", "/api/ping", ok)).status == 200
    big = [field(b"X-Big", FIELD + 1)]
    refused(raw_exchange(service.port, request_bytes("GET", "/api/ping", big)), 431)


def test_total_head_limit(service: ServiceProcess) -> None:
    # Every field within its own limit, the head as a whole over MAX_REQUEST_HEAD_BYTES.
    fields = [field(b"X-%d" % n, FIELD - 10) for n in range(HEAD // FIELD + 2)]
    refused(raw_exchange(service.port, request_bytes("GET", "/api/ping", fields)), 431)


def test_endless_header_is_cut_off(service: ServiceProcess) -> None:
    """A header that never ends (10 MB, no newline): refused after MAX_REQUEST_HEAD_BYTES
    plus at most one read, not buffered whole."""
    head = b"GET /api/ping HTTP/1.1\r\nHost: x\r\nX-Endless: "
    sent = 0
    data = b""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        try:
            sock.sendall(head)
            while sent < 10_000_000:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass  # the server closed the connection: stop sending
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass
    assert sent < 4_000_000, f"the server read {sent} bytes of one header"
    response = parse_response(data)
    assert response.status in (None, 431), response  # None: reset before it was read


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(
    service: ServiceProcess,
) -> None:
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(BODY_LIMIT + 1).encode()),
        (b"Expect", b"100-continue"),
    ]
    # Only the head is sent: the client waits for 100 Continue, the server says 413.
    response = raw_exchange(service.port, request_bytes("POST", "/api/items", headers))
    refused_413(response)
    largest = [(b"Content-Length", b"9" * 19)]  # the parser's largest (64-bit) length
    refused_413(raw_exchange(service.port, request_bytes("POST", "/api/items", largest)))
    beyond = [(b"Content-Length", b"9" * 30)]  # not a number the parser accepts
    response = raw_exchange(service.port, request_bytes("POST", "/api/items", beyond))
    assert response.status == 400, response


def refused_413(response: RawResponse) -> None:
    assert response.status == 413, response
    assert not response.body.startswith(b"HTTP/1.1 100"), response
    assert json.loads(response.body)["detail"] == f"request body larger than {BODY_LIMIT} bytes"
    assert response.headers["connection"] == "close" and "x-request-id" in response.headers


def test_chunked_body_over_the_limit_is_refused(service: ServiceProcess) -> None:
    piece = b"x" * 16384
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    head = request_bytes(
        "POST",
        "/api/items",
        [(b"Content-Type", b"application/json"), (b"Transfer-Encoding", b"chunked")],
    )
    body = chunk * (BODY_LIMIT // len(piece) + 2) + b"0\r\n\r\n"
    response = raw_exchange(service.port, head + body)
    assert response.status == 413, response
    under = b'{"name": "%s"}' % (b"n" * 300)
    small = b"%x\r\n%s\r\n0\r\n\r\n" % (len(under), under)
    response = raw_exchange(service.port, head + small)
    assert response.status == 422, response  # read whole; the name is too long


def test_body_at_the_limit_is_read(service: ServiceProcess) -> None:
    body = b'{"name": "%s"}' % (b"n" * (BODY_LIMIT - 12))
    assert len(body) == BODY_LIMIT
    headers = [(b"Content-Type", b"application/json")]
    response = raw_exchange(service.port, request_bytes("POST", "/api/items", headers, body))
    assert response.status == 422, response  # parsed (the name is too long), not 413
    good = request_bytes("POST", "/api/items", headers, b'{"name": "fits"}')
    assert raw_exchange(service.port, good).status == 201


def test_every_refusal_has_an_access_line(service: ServiceProcess) -> None:
    response = raw_exchange(service.port, request_bytes("GET", "/api/" + "a" * LINE))
    line = service.wait_for_event("request_completed", request_id=response.headers["x-request-id"])
    assert (line["status_code"], line["method"], line["level"]) == (414, "GET", "info")
    assert line["error"] == f"request target longer than {LINE} bytes"
    assert line["path"].startswith("/api/aaa") and line["client_ip"] == "127.0.0.1"


# -- In process: the middleware on its own -----------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3", "MAX_REQUEST_BODY_BYTES": "100"}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_middleware_refuses_declared_and_streamed_bodies(client: TestClient) -> None:
    assert client.post("/api/items", json={"name": "x" * 60}).status_code == 201
    declared = client.post("/api/items", content=b"{" + b" " * 100 + b"}")
    assert declared.status_code == 413 and declared.headers["connection"] == "close"

    def stream() -> Iterator[bytes]:
        yield b'{"name": "'
        yield b"x" * 200
        yield b'"}'

    streamed = client.post("/api/items", content=stream())
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["detail"] == "request body larger than 100 bytes"


def test_body_limit_is_validated() -> None:
    from service.config import SettingsError

    for bad in ("0", "-1", "ten"):
        with pytest.raises(SettingsError, match="MAX_REQUEST_BODY_BYTES"):
            load_settings({"MAX_REQUEST_BODY_BYTES": bad})
