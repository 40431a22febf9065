"""The real Gunicorn command against real PostgreSQL, Redis and an OTLP receiver."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tools.testbed.otlp_receiver import OtlpReceiver
from tools.testbed.servers import GUNICORN_COMMAND, PostgresServer, RedisServer, ServiceProcess
from tools.testbed.support import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.integration
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def service(
    postgres: PostgresServer, redis_server: RedisServer, otlp: OtlpReceiver
) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        env={
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "api-under-test",
            "GRACE_PERIOD_SECONDS": "5",
        }
    ).start(wait="/health/ready")
    yield svc
    svc.stop()
    svc.records()  # every line of the whole run parses as JSON


def test_traceparent_is_honoured_in_log_and_exported_span(
    service: ServiceProcess, otlp: OtlpReceiver
) -> None:
    response = httpx.get(f"{service.url}/api/items", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    line = service.wait_for_event("request_completed", path="/api/items", trace_id=TRACE_ID)
    assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
    assert line["request_id"] == response.headers["x-request-id"]
    wait_for(
        lambda: any(s["name"] == "GET /api/items" for s in otlp.spans_for(TRACE_ID)),
        15,
        what="the server span at the OTLP receiver",
    )
    # The server span (its children: a span per SQL statement).
    [span] = [s for s in otlp.spans_for(TRACE_ID) if s["parent_span_id"] == "b7ad6b7169203331"]
    assert span["name"] == "GET /api/items"
    assert span["parent_span_id"] == "b7ad6b7169203331"
    assert span["span_id"] == line["span_id"]
    assert span["resource"]["service.name"] == "api-under-test"


def test_request_without_traceparent_gets_a_fresh_trace_id(service: ServiceProcess) -> None:
    response = httpx.get(f"{service.url}/api/ping")
    line = service.wait_for_event("request_completed", request_id=response.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])
    assert line["trace_id"] != "0" * 32


def test_request_id_kept_when_valid_and_replaced_otherwise(service: ServiceProcess) -> None:
    response = httpx.get(f"{service.url}/api/ping", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    service.wait_for_event("request_completed", request_id="abc-123")
    for bad in ['a"b', "x" * 10_000, "tab\there", "quote'\\", "\x7f", "ü-id", "a b"]:
        response = httpx.get(
            f"{service.url}/api/ping", headers=[(b"X-Request-ID", bad.encode("utf-8"))]
        )
        if response.status_code == 400 and "x-request-id" not in response.headers:
            continue  # the HTTP parser refused the header bytes before the app saw them
        new_id = response.headers["x-request-id"]
        assert new_id != bad and re.fullmatch(r"[0-9a-f]{32}", new_id)
        service.wait_for_event("request_completed", request_id=new_id)
    # A raw request with a CR/LF smuggled into the header value: the server rejects it
    # or we replace the id; either way the log stays one object per line.
    with httpx.Client() as client:
        client.get(f"{service.url}/api/ping", headers={"User-Agent": "evil\x01\x1b[31m"})
    service.records()


def test_slow_request_warning(service: ServiceProcess) -> None:
    response = httpx.get(f"{service.url}/api/slow", params={"ms": 700})
    assert response.status_code == 200
    line = service.wait_for_event("slow_request", request_id=response.headers["x-request-id"])
    assert line["level"] == "warning"
    assert line["threshold_ms"] == 500
    assert line["duration_ms"] >= 700


def test_unhandled_exception_logs_traceback_and_returns_json_500(service: ServiceProcess) -> None:
    response = httpx.get(f"{service.url}/api/error")
    assert response.status_code == 500
    body = response.json()
    request_id = response.headers["x-request-id"]
    assert body["request_id"] == request_id
    line = service.wait_for_event("unhandled_exception", request_id=request_id)
    assert line["level"] == "error"
    assert line["error"].startswith("RuntimeError: demo failure")
    assert "Traceback" in line["traceback"]
    access = service.wait_for_event("request_completed", request_id=request_id)
    assert access["level"] == "error" and access["status_code"] == 500


def test_items_round_trip_through_database_and_cache(service: ServiceProcess) -> None:
    created = httpx.post(f"{service.url}/api/items", json={"name": "widget"})
    assert created.status_code == 201
    item_id = created.json()["id"]
    for _ in range(2):  # the second read comes from Redis
        fetched = httpx.get(f"{service.url}/api/items/{item_id}")
        assert fetched.status_code == 200 and fetched.json()["name"] == "widget"
    bad = httpx.post(f"{service.url}/api/items", json={"name": ""})
    assert bad.status_code == 422 and "detail" in bad.json()


def test_readiness_follows_postgres_and_reports_redis(
    service: ServiceProcess, postgres: PostgresServer, redis_server: RedisServer
) -> None:
    """The database is required (503 without it); Redis, a cache with a database
    fallback, is reported but keeps readiness 200 (READINESS_REQUIRES' default)."""
    ready = httpx.get(f"{service.url}/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"]["healthy"] and checks["redis"]["healthy"]
    assert "latency_ms" in checks["redis"]
    assert ready.json()["required"] == ["database"]

    for server, name, status in ((postgres, "database", 503), (redis_server, "redis", 200)):
        server.stop()
        try:
            started = time.monotonic()
            response = httpx.get(f"{service.url}/health/ready", timeout=5)
            assert time.monotonic() - started < 2.0  # within the probe timeout
            assert response.status_code == status, response.text
            assert response.json()["status"] == ("not_ready" if status == 503 else "ready")
            # The schema check reads the database too: it may fail beside it.
            failing = response.json()["failing"]
            assert [check for check in failing if check != "schema"] == [name], failing
            assert httpx.get(f"{service.url}/health/live").status_code == 200
        finally:
            server.start()
        wait_for(
            lambda: "failing" not in httpx.get(f"{service.url}/health/ready", timeout=5).json(),
            20,
            what=f"readiness to recover after {name} came back",
        )


def test_readiness_requires_redis_when_told_to(
    postgres: PostgresServer, redis_server: RedisServer
) -> None:
    service = ServiceProcess(
        env={
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "READINESS_REQUIRES": "database,redis",
            "WEB_CONCURRENCY": "1",
        }
    ).start(wait="/health/ready")
    try:
        redis_server.stop()
        try:
            response = httpx.get(f"{service.url}/health/ready", timeout=5)
        finally:
            redis_server.start()
        assert response.status_code == 503, response.text
        assert response.json()["failing"] == ["redis"]
        assert response.json()["required"] == ["database", "redis"]
    finally:
        service.stop()


def test_bad_environment_value_stops_startup_with_one_line() -> None:
    env = {"PATH": os.environ["PATH"], "SLOW_REQUEST_MS": "abc", "PORT": str(free_port())}
    result = subprocess.run(
        GUNICORN_COMMAND, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["message"] == "invalid_configuration"
    assert "SLOW_REQUEST_MS" in record["error"]


def test_make_run_serves_items_with_no_servers(tmp_path: object) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["PORT"] = str(port)
    env["METRICS_PORT"] = str(free_port())  # not the default 9464 another server may hold
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 120, what="make run to serve /health/ready")
        ready = httpx.get(f"{url}/health/ready").json()
        assert ready["checks"]["database"]["healthy"]
        assert httpx.post(f"{url}/api/items", json={"name": "x"}).status_code == 201
        assert httpx.get(f"{url}/api/items").status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
