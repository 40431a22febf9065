"""The app in-process (httpx ASGI transport + lifespan), embedded SQLite."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.config import load_settings
from service.main import create_app
from service.telemetry.logs import JsonFormatter
from service.telemetry.tracing import setup_tracing


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.setFormatter(JsonFormatter("test"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def events(self, message: str) -> list[dict[str, object]]:
        return [line for line in self.lines if line["message"] == message]


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/test.sqlite3",
            "API_TOKENS": "good-token=alice",
            "SLOW_REQUEST_MS": "50",
            "DEMO_ROUTES": "true",
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_access_line_has_request_and_trace_ids(client: TestClient, capture: Capture) -> None:
    response = client.get("/api/ping", headers={"X-Request-ID": "req-1", "User-Agent": "t/1"})
    assert response.headers["x-request-id"] == "req-1"
    [line] = capture.events("request_completed")
    assert line["request_id"] == "req-1"
    assert line["method"] == "GET" and line["path"] == "/api/ping"
    assert line["status_code"] == 200 and line["user_agent"] == "t/1"
    assert isinstance(line["duration_ms"], float)
    assert len(str(line["trace_id"])) == 32 and len(str(line["span_id"])) == 16


def test_health_probes_log_at_debug_and_are_not_traced(
    client: TestClient, capture: Capture, spans: InMemorySpanExporter
) -> None:
    client.get("/health/live")
    [line] = capture.events("request_completed")
    assert line["level"] == "debug"
    assert "trace_id" not in line
    assert spans.get_finished_spans() == ()
    client.get("/api/ping")  # the control: a traced route's span is seen
    assert [span.name for span in spans.get_finished_spans()] == ["GET /api/ping"]


def test_slow_request_warning(client: TestClient, capture: Capture) -> None:
    client.get("/api/slow", params={"ms": 80})
    [line] = capture.events("slow_request")
    assert line["level"] == "warning" and line["threshold_ms"] == 50


def test_unhandled_exception_json_500(client: TestClient, capture: Capture) -> None:
    response = client.get("/api/error")
    assert response.status_code == 500
    assert response.json()["request_id"] == response.headers["x-request-id"]
    [line] = capture.events("unhandled_exception")
    assert "Traceback" in str(line["traceback"])
    [access] = capture.events("request_completed")
    assert access["level"] == "error"


def test_user_id_from_verified_token_only(client: TestClient, capture: Capture) -> None:
    created = client.post(
        "/api/items", json={"name": "a"}, headers={"Authorization": "Bearer good-token"}
    )
    assert created.status_code == 201 and created.json()["created_by"] == "alice"
    assert capture.events("request_completed")[-1]["user_id"] == "alice"
    refused = client.post(
        "/api/items",
        json={"name": "a"},
        headers={"Authorization": "Bearer forged", "X-User-ID": "admin"},
    )
    assert refused.status_code == 401
    anonymous = client.post("/api/items", json={"name": "b"}, headers={"X-User-ID": "admin"})
    assert anonymous.status_code == 401  # with API tokens configured, writes need one


def test_bad_request_data_gets_json_4xx(client: TestClient) -> None:
    auth = {"Authorization": "Bearer good-token"}
    extra = {"name": "x", "extra": 1}
    assert client.post("/api/items", json=extra, headers=auth).status_code == 422
    assert client.post("/api/items", content=b"{not json", headers=auth).status_code == 422
    assert client.get("/api/items/0").status_code == 422
    assert client.get("/api/items/999").status_code == 404
    assert client.get("/api/slow", params={"ms": "lots"}).json()["detail"]


def test_readiness_with_embedded_database(client: TestClient) -> None:
    body = client.get("/health/ready").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["healthy"] is True


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process's TracerProvider ends from now on (the one the app uses)."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    setup_tracing("test").add_span_processor(processor)
    yield exporter
    processor.shutdown()  # the SDK cannot remove it: it exports nothing from now on


def test_observability_off_means_no_access_log_and_no_spans(
    tmp_path: Path, capture: Capture, spans: InMemorySpanExporter
) -> None:
    # The control: with OBSERVABILITY=full the same request ends a span the exporter sees.
    full = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/full.sqlite3"})
    with TestClient(create_app(full)) as test_client:
        assert test_client.get("/api/ping").status_code == 200
    assert "GET /api/ping" in [span.name for span in spans.get_finished_spans()]
    spans.clear()
    capture.lines.clear()

    settings = load_settings(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/off.sqlite3", "OBSERVABILITY": "off"}
    )
    with TestClient(create_app(settings)) as test_client:
        response = test_client.get("/api/ping")
    assert response.status_code == 200
    assert "x-request-id" not in response.headers
    assert capture.events("request_completed") == []
    assert spans.get_finished_spans() == ()


def test_observability_off_still_answers_a_crash_with_json_500(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/off.sqlite3",
            "OBSERVABILITY": "off",
            "DEMO_ROUTES": "true",
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        response = test_client.get("/api/error")
    assert response.status_code == 500
    # No access-log middleware, so no request id: the shape stays, the id is null.
    assert response.json() == {"detail": "Internal Server Error", "request_id": None}
