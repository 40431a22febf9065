"""POST /admin/shutdown: absent (404) without ADMIN_TOKEN or off the admin listener, 401
for a wrong token, and with the right one the drain of this worker or, under Gunicorn, a
SIGTERM to the master."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.api.dependencies import Resources
from service.api.errors import add_error_handlers
from service.api.routes.admin import router
from service.config import load_settings
from service.main import create_app
from service.server.shutdown import GracefulShutdownManager

TOKEN = "t" * 64
ON_LISTENER = "80"  # TestClient's requests come in on port 80


def app_with(**env: str) -> FastAPI:
    app = FastAPI()
    settings = load_settings(env)
    app.state.settings = settings
    app.state.shutdown = GracefulShutdownManager(5, 0)
    app.state.resources = Resources(settings, None, None)  # type: ignore[arg-type]
    app.include_router(router)
    add_error_handlers(app)
    return app


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    yield sent


def shutdown(app: FastAPI, token: str | None = TOKEN) -> tuple[int, dict[str, str], object]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        response = client.post("/admin/shutdown", headers=headers)
    return response.status_code, dict(response.headers), response.json()


def test_without_admin_token_the_route_is_absent() -> None:
    app = app_with(ADMIN_PORT=ON_LISTENER)
    status, _, body = shutdown(app)
    assert (status, body) == (404, {"detail": "Not Found", "request_id": None})
    assert not app.state.shutdown.is_draining


def test_off_the_admin_listener_the_route_is_absent_even_with_the_token() -> None:
    app = app_with(ADMIN_TOKEN=TOKEN)  # ADMIN_PORT 8001: not this request's port
    assert shutdown(app)[0] == 404
    assert not app.state.shutdown.is_draining


@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1]])
def test_a_missing_or_wrong_token_is_a_401(token: str | None) -> None:
    app = app_with(ADMIN_TOKEN=TOKEN, ADMIN_PORT=ON_LISTENER)
    status, headers, body = shutdown(app, token)
    assert (status, body) == (401, {"detail": "invalid admin token", "request_id": None})
    assert headers["www-authenticate"] == "Bearer"
    assert not app.state.shutdown.is_draining


def test_the_right_token_drains_this_worker_without_a_master(
    kills: list[tuple[int, int]],
) -> None:
    app = app_with(ADMIN_TOKEN=TOKEN, ADMIN_PORT=ON_LISTENER)
    assert shutdown(app)[::2] == (202, {"status": "shutting_down"})
    assert app.state.shutdown.is_draining
    assert kills == []


def test_the_right_token_signals_the_master_under_gunicorn(
    kills: list[tuple[int, int]],
) -> None:
    app = app_with(ADMIN_TOKEN=TOKEN, ADMIN_PORT=ON_LISTENER)
    app.state.shutdown.master_pid = 4242
    assert shutdown(app)[0] == 202
    assert kills == [(4242, signal.SIGTERM)]  # the master drains every worker
    assert not app.state.shutdown.is_draining  # it reaches this worker as a signal


@pytest.mark.parametrize("env", [{}, {"ADMIN_TOKEN": TOKEN}])
def test_refused_admin_calls_on_the_api_port_are_counted_as_unmatched(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The API port's 404 for the admin path is the empty route in the metrics, as for any
    unknown URL: the route does not exist there, not even as a label."""
    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3", **env})
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/admin/shutdown", headers=headers).status_code == 404
        assert client.post("/admin/shutdown").status_code == 404
        assert client.get("/admin/shutdown").status_code == 404  # 405 turned 404
        assert client.get("/api/items/999999").status_code == 404  # a route's own 404
        text = generate_latest(client.app.state.metrics.registry).decode()  # type: ignore[attr-defined]
    counts = {
        (s.labels["http_request_method"], s.labels["http_route"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "http_server_request_duration_seconds_count"
        and s.labels["http_response_status_code"] == "404"
    }
    assert "admin" not in text
    assert counts == {("POST", ""): 2, ("GET", ""): 1, ("GET", "/api/items/{item_id}"): 1}
