"""OBSERVABILITY=off really switches tracing off; "full" really exports a server span for
every request, with the trace and span ids its access-log line shows (real Gunicorn,
real OTLP/HTTP receiver)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.testbed.otlp_receiver import OtlpReceiver
from tools.testbed.servers import ServiceProcess
from tools.testbed.support import wait_for

pytestmark = pytest.mark.integration
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
# Traced requests of both tests: (method, path, expected status, expected http.route).
REQUESTS = [
    ("GET", "/api/ping", 200, "/api/ping"),
    ("GET", "/api/ping", 200, "/api/ping"),
    ("GET", "/api/items", 200, "/api/items"),
    ("POST", "/api/items", 201, "/api/items"),
    ("GET", "/api/items/987654", 404, "/api/items/{item_id}"),
    ("GET", "/api/error", 500, "/api/error"),
]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def service(observability: str, otlp: OtlpReceiver, tmp_path: Path) -> ServiceProcess:
    return ServiceProcess(
        env={
            "OBSERVABILITY": observability,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": f"switch-{observability}",
        },
        tmp_dir=tmp_path,
    )


def send_requests(svc: ServiceProcess) -> list[httpx.Response]:
    responses = []
    with httpx.Client(base_url=svc.url, timeout=10) as client:
        for method, path, status, _ in REQUESTS:
            body = {"name": "switch"} if method == "POST" else None
            # Without the access-log middleware (OBSERVABILITY=off) uvicorn drops the
            # connection after an unhandled exception: do not reuse it.
            headers = {"connection": "close"} if status == 500 else {}
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (path, response.text)
            responses.append(response)
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200
        joined = client.get("/api/ping", headers={"traceparent": TRACEPARENT})
        assert joined.status_code == 200
        responses.append(joined)
    return responses


def server_spans(otlp: OtlpReceiver, trace_id: str) -> list[dict[str, Any]]:
    return [s for s in otlp.spans_for(trace_id) if s["kind"] == SERVER_KIND]


def value(attribute: Any) -> object:
    return getattr(attribute, attribute.WhichOneof("value"))


def test_full_exports_the_span_of_every_logged_request(tmp_path: Path) -> None:
    with OtlpReceiver() as otlp:
        svc = service("full", otlp, tmp_path).start(wait="/health/ready")
        try:
            responses = send_requests(svc)
            request_ids = [r.headers["x-request-id"] for r in responses]
            lines: dict[str, dict[str, Any]] = {}

            def all_logged() -> bool:
                lines.update(
                    (line["request_id"], line)
                    for line in svc.events("request_completed")
                    if line["request_id"] in request_ids
                )
                return len(lines) == len(request_ids)

            wait_for(all_logged, 15, what="an access line for every request")
            trace_ids = [lines[rid]["trace_id"] for rid in request_ids]
            wait_for(
                lambda: all(server_spans(otlp, t) for t in trace_ids),
                15,
                what="every request's server span at the OTLP receiver",
            )
        finally:
            svc.stop()
    for (method, path, status, route), request_id in zip(
        [*REQUESTS, ("GET", "/api/ping", 200, "/api/ping")], request_ids, strict=True
    ):
        line = lines[request_id]
        assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"]) and line["trace_id"] != "0" * 32
        [span] = [s for s in otlp.spans_for(line["trace_id"]) if s["span_id"] == line["span_id"]]
        assert span["kind"] == SERVER_KIND
        assert span["name"] == f"{method} {route}"
        attributes = {key: value(v) for key, v in span["attributes"].items()}
        assert attributes["http.request.method"] == method
        assert attributes["url.path"] == path
        assert attributes["url.scheme"] == "http"
        assert attributes["http.route"] == route
        assert attributes["http.response.status_code"] == status
        assert attributes["client.address"] == "127.0.0.1"
        assert span["resource"]["service.name"] == "switch-full"
    # The request that came with a traceparent joined the caller's trace.
    assert lines[request_ids[-1]]["trace_id"] == TRACE_ID
    [joined] = server_spans(otlp, TRACE_ID)
    assert joined["parent_span_id"] == "00f067aa0ba902b7"
    # Probes are not traced, and each request has exactly one server span (its children,
    # a span per SQL statement or Redis command, are the dependency spans).
    servers = [s for s in otlp.spans if s["kind"] == SERVER_KIND]
    assert not [
        s for s in servers if str(value(s["attributes"]["url.path"])).startswith("/health/")
    ]
    assert len(servers) == len(request_ids)
    svc.records()  # every line of the run is JSON


def test_off_switch_creates_no_span_and_no_access_line(tmp_path: Path) -> None:
    with OtlpReceiver() as otlp:
        svc = service("off", otlp, tmp_path).start(wait="/health/ready")
        try:
            send_requests(svc)
        finally:
            svc.stop()  # a provider would flush what it holds on the way out
        assert otlp.spans == []
    assert svc.events("request_completed") == []
    assert svc.events("tracing_configured") == []
    errors = [r for r in svc.records() if r["level"] == "error"]
    assert errors, "the crash of /api/error is still logged"
    assert not [r for r in svc.records() if "trace_id" in r]
