"""With API tokens configured, every write under /api needs a valid bearer token (401 in
the one error shape, with WWW-Authenticate: Bearer); reads stay open. Without tokens,
writes stay open (the `make run` quick start). The real Gunicorn, embedded SQLite."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.integration
TOKEN = "writer-token-0123456789abcdef"
ITEM = {"name": "written"}


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    process = ServiceProcess(env={"WEB_CONCURRENCY": "1", "API_TOKENS": f"{TOKEN}=alice"})
    process.start(wait="/health/ready")
    yield process
    process.stop()


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"detail", "request_id"} and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},  # another scheme: no bearer token
        {"Authorization": "Bearer", "X-User-ID": "alice"},  # a header the client asserts
    ],
    ids=["no token", "wrong token", "basic scheme", "asserted user"],
)
def test_a_write_without_a_valid_token_is_refused(
    service: ServiceProcess, headers: dict[str, str]
) -> None:
    before = httpx.get(f"{service.url}/api/items", params={"limit": 500}).json()
    assert_refused(httpx.post(f"{service.url}/api/items", json=ITEM, headers=headers))
    assert httpx.get(f"{service.url}/api/items", params={"limit": 500}).json() == before


def test_every_documented_write_under_api_is_refused(service: ServiceProcess) -> None:
    """The check is app-wide, not per route: each write the document lists needs a token."""
    paths = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    writes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
        if method.upper() not in ("GET", "HEAD", "OPTIONS")
    ]
    assert ("POST", "/api/items") in writes
    for method, path in writes:
        assert_refused(httpx.request(method, service.url + path, json=ITEM))


def test_the_check_runs_before_the_body_is_validated(service: ServiceProcess) -> None:
    """No token, bad body: 401, not a 422 that describes the write's schema."""
    assert_refused(httpx.post(f"{service.url}/api/items", json={"unknown": 1}))


def test_a_write_with_a_valid_token_is_made_by_its_user(service: ServiceProcess) -> None:
    response = httpx.post(
        f"{service.url}/api/items", json=ITEM, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["created_by"] == "alice"
    assert httpx.get(f"{service.url}/api/items/{created['id']}").json() == created


def test_reads_stay_open(service: ServiceProcess) -> None:
    for path in ("/api/items", "/api/ping", "/version", "/health/ready"):
        assert httpx.get(service.url + path).status_code == 200, path


def test_without_tokens_writes_stay_open() -> None:
    service = ServiceProcess(env={"WEB_CONCURRENCY": "1"}).start(wait="/health/ready")
    try:
        response = httpx.post(f"{service.url}/api/items", json=ITEM)
        assert response.status_code == 201, response.text
        assert response.json()["created_by"] is None
    finally:
        service.stop()
