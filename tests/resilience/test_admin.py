"""The admin surface: absent without ADMIN_TOKEN (every method, and the OpenAPI
document), served only on the loopback admin listener (never on the API port a Service
reaches), a constant-time token comparison, and refused attempts logged without the
token's value."""

from __future__ import annotations

import hmac
from pathlib import Path
from unittest import mock

import httpx
import pytest
from fastapi.testclient import TestClient

from service.config import load_settings
from service.main import create_app
from tests.resilience.harness import raw_exchange, request_bytes
from tools.testbed.servers import ServiceProcess
from tools.testbed.support import free_port

pytestmark = pytest.mark.resilience
TOKEN = "adm1n-T0ken-of-some-length-7f3a9c"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Authorization values a caller might try; none is the token.
ATTEMPTS: list[bytes] = [
    b"",
    b"Bearer",
    b"Bearer ",
    b"Bearer wrong-token",
    b"Bearer " + TOKEN[:-1].encode(),  # a prefix
    b"Bearer " + TOKEN.encode() + b"x",  # a longer one
    b"Bearer " + TOKEN.upper().encode(),
    b"Basic " + TOKEN.encode(),  # another scheme
    TOKEN.encode(),  # no scheme
    b"Bearer " + b"\xe9\xe8-latin-1-token",
    b"Bearer " + b"A" * 7000,
    b'Bearer ","level":"info","message":"admin_shutdown_requested',
]


def test_absent_without_admin_token() -> None:
    service = ServiceProcess(env={"WEB_CONCURRENCY": "1"}).start()
    try:
        for method in METHODS:
            response = raw_exchange(
                service.port,
                request_bytes(method, "/admin/shutdown", [(b"Connection", b"close")]),
            )
            assert response.status == 404, (method, response)
            assert "allow" not in response.headers, (method, response.headers)
        for path in ("/admin", "/admin/", "/admin/other"):
            assert httpx.post(f"{service.url}{path}").status_code == 404
        schema = httpx.get(f"{service.url}/openapi.json").json()
        assert not [p for p in schema["paths"] if p.startswith("/admin")]
        assert httpx.get(f"{service.url}/health/ready").status_code == 200
        assert "shutdown_started" not in {r["message"] for r in service.records()}
    finally:
        service.stop()


def test_api_port_never_serves_the_admin_route() -> None:
    admin_port = free_port()
    env = {"WEB_CONCURRENCY": "1", "ADMIN_TOKEN": TOKEN, "ADMIN_PORT": str(admin_port)}
    service = ServiceProcess(env=env).start()
    try:
        right = [(b"Authorization", b"Bearer " + TOKEN.encode()), (b"Connection", b"close")]
        for method in METHODS:
            response = raw_exchange(service.port, request_bytes(method, "/admin/shutdown", right))
            assert response.status == 404, (method, response)
            assert "allow" not in response.headers, (method, response.headers)
        assert httpx.get(f"{service.url}/health/ready").status_code == 200
    finally:
        service.stop()
    assert "admin_shutdown_requested" not in {r["message"] for r in service.records()}


def test_refused_attempts_are_logged_without_the_token() -> None:
    admin_port = free_port()
    env = {"WEB_CONCURRENCY": "1", "ADMIN_TOKEN": TOKEN, "ADMIN_PORT": str(admin_port)}
    service = ServiceProcess(env=env).start()
    try:
        statuses = []
        for value in ATTEMPTS:
            headers = [(b"Authorization", value), (b"Connection", b"close")] if value else []
            response = raw_exchange(admin_port, request_bytes("POST", "/admin/shutdown", headers))
            statuses.append(response.status)
            assert response.status == 401, (value, response)
            assert response.headers["www-authenticate"] == "Bearer"
        for method in ("GET", "PUT", "DELETE"):  # with the token set, the route exists
            response = raw_exchange(
                admin_port,
                request_bytes(method, "/admin/shutdown", [(b"Connection", b"close")]),
            )
            assert response.status == 405 and response.headers["allow"] == "POST"
        assert httpx.get(f"{service.url}/health/ready").status_code == 200
        schema = httpx.get(f"{service.url}/openapi.json").json()
        assert "/admin/shutdown" not in schema["paths"]  # not part of the public API
    finally:
        service.stop()

    records = service.records()
    refused = [r for r in records if r["message"] == "admin_request_refused"]
    assert len(refused) == len(ATTEMPTS)
    assert all(r["level"] == "warning" and r["client_ip"] == "127.0.0.1" for r in refused)
    assert [r["token_present"] for r in refused] == [
        bool(v.partition(b" ")[2].strip()) and v.lower().startswith(b"bearer") for v in ATTEMPTS
    ]
    assert "admin_shutdown_requested" not in {r["message"] for r in records}
    output = service.output()
    assert TOKEN not in output and TOKEN[:12] not in output
    for value in ATTEMPTS:
        secret = value.partition(b" ")[2].strip() or value
        if len(secret) >= 8:
            assert secret.decode("latin-1") not in output, secret[:40]
    print(
        f"\nadmin: {len(METHODS)} methods answered 404 without ADMIN_TOKEN; {len(ATTEMPTS)}"
        f" wrong tokens answered {set(statuses)}, {len(refused)} refusals logged,"
        f" {len(records)} lines checked for token values"
    )


def test_token_comparison_is_constant_time(tmp_path: Path) -> None:
    """Every attempt goes through hmac.compare_digest (no == on the secret)."""
    settings = load_settings(  # TestClient's server port is 80: the admin listener here
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3",
            "ADMIN_TOKEN": TOKEN,
            "ADMIN_PORT": "80",
        }
    )
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    with (
        mock.patch("service.api.routes.admin.hmac.compare_digest", spy),
        mock.patch("service.api.routes.admin.os.kill") as kill,
        TestClient(create_app(settings)) as client,
    ):
        for token in ("wrong", TOKEN[:-1], TOKEN + "x", ""):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            assert client.post("/admin/shutdown", headers=headers).status_code == 401
        assert kill.call_count == 0
    assert len(calls) == 4
    assert all(expected == TOKEN.encode() for _, expected in calls)
    assert [given for given, _ in calls] == [
        b"wrong",
        TOKEN[:-1].encode(),
        TOKEN.encode() + b"x",
        b"",
    ]
