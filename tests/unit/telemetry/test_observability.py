"""ObservabilityMiddleware on the ASGI interface: the request id and version headers, the
per-request context, the server span (joined trace, route, status, probes untraced), the
metrics and access line, and the JSON 500 for an exception from the app."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request import context
from service.telemetry.metrics import AppMetrics, BuildInfo
from service.telemetry.observability import ObservabilityMiddleware
from tests.unit.telemetry.spans import factory

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()


def http_scope(
    path: str = "/api/ping", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": "http",
        "http_version": "1.1",
        "headers": headers or [],
        "client": ("10.0.0.9", 5000),
    }


def answer(status: int = 200, route: str | None = None) -> ASGIApp:
    """An app answering `status`; `route` is the template a router would put in scope."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if route is not None:
            scope["route"] = SimpleNamespace(path=route)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


class Run:
    """One request through the middleware: what it sent, and the finished spans."""

    def __init__(
        self,
        app: ASGIApp,
        scope: dict[str, Any],
        sdk: tuple[TracerProvider, InMemorySpanExporter],
        metrics: AppMetrics | None = None,
        app_version: str | None = "1.2.3",
    ) -> None:
        self.sent: list[Message] = []
        middleware = ObservabilityMiddleware(app, 500, metrics=metrics, app_version=app_version)
        middleware.spans = factory(sdk[0], "service.http")

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            self.sent.append(message)

        asyncio.run(middleware(scope, receive, send))
        self.spans: list[ReadableSpan] = list(sdk[1].get_finished_spans())

    @property
    def start(self) -> Message:
        [start] = [m for m in self.sent if m["type"] == "http.response.start"]
        return start

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.start["headers"])

    @property
    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))

    @property
    def span(self) -> ReadableSpan:
        [span] = self.spans
        return span


SDK = tuple[TracerProvider, InMemorySpanExporter]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        cast(dict[str, Any], r.__dict__["fields"]) | {"level": r.levelno}
        for r in caplog.records
        if getattr(r, "event", None) == "request_completed"
    ]


def duration_count(metrics: AppMetrics, method: str, route: str, status: int) -> float | None:
    return metrics.registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {
            "http_request_method": method,
            "http_route": route,
            "http_response_status_code": str(status),
        },
    )


def test_a_valid_incoming_request_id_is_kept_and_the_version_added(sdk: SDK) -> None:
    run = Run(answer(), http_scope(headers=[(b"x-request-id", b"req-1.a_B")]), sdk)
    assert run.headers[b"x-request-id"] == b"req-1.a_B"
    assert run.headers[b"x-app-version"] == b"1.2.3"


def test_an_invalid_request_id_is_replaced_and_no_version_header_without_one(sdk: SDK) -> None:
    run = Run(answer(), http_scope(headers=[(b"x-request-id", b"bad id!")]), sdk, app_version=None)
    request_id = run.headers[b"x-request-id"]
    assert request_id != b"bad id!" and len(request_id) == 32
    assert b"x-app-version" not in run.headers


def test_the_app_sees_the_request_id_and_no_user_and_both_are_reset_after(sdk: SDK) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((context.request_id.get(), context.user_id.get()))
        context.user_id.set("alice")  # as the auth dependency does
        await answer()(scope, receive, send)

    async def send(message: Message) -> None:
        pass

    async def scenario() -> tuple[str | None, str | None]:
        middleware = ObservabilityMiddleware(app, 500)
        middleware.spans = factory(sdk[0], "service.http")
        context.user_id.set("left-over")
        scope = http_scope(headers=[(b"x-request-id", b"req-2")])
        await middleware(scope, cast(Receive, None), send)  # in this task: same context
        return context.request_id.get(), context.user_id.get()

    assert asyncio.run(scenario()) == (None, "left-over")
    assert seen == [("req-2", None)]


def test_non_http_scopes_pass_through_untouched(sdk: SDK) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope = {"type": "lifespan"}
    run = Run(app, scope, sdk)
    assert seen == [scope] and run.sent == [] and run.spans == []


def test_the_server_span_joins_the_callers_trace(sdk: SDK) -> None:
    current: list[trace.SpanContext] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        current.append(trace.get_current_span().get_span_context())
        await answer()(scope, receive, send)

    run = Run(app, http_scope(headers=[(b"traceparent", TRACEPARENT)]), sdk)
    span = run.span
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert current == [span.context]  # what the app's log lines take their ids from


def test_without_traceparent_the_span_starts_a_new_trace(sdk: SDK) -> None:
    run = Run(answer(), http_scope(), sdk)
    assert run.span.parent is None


def test_a_routed_request_names_the_span_after_its_template(sdk: SDK) -> None:
    run = Run(answer(200, "/api/items/{item_id}"), http_scope("/api/items/7"), sdk)
    span = run.span
    assert span.name == "GET /api/items/{item_id}"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/api/items/{item_id}"
    assert span.attributes["url.path"] == "/api/items/7"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["client.address"] == "10.0.0.9"
    assert span.status.status_code is StatusCode.UNSET


def test_an_unrouted_request_keeps_the_method_as_span_name(sdk: SDK) -> None:
    run = Run(answer(404), http_scope("/nowhere"), sdk)
    assert run.span.name == "GET"
    assert run.span.attributes is not None and "http.route" not in run.span.attributes
    assert run.span.status.status_code is StatusCode.UNSET  # a 4xx is not a server error


def test_a_5xx_answer_marks_the_span_as_an_error(sdk: SDK) -> None:
    assert Run(answer(503), http_scope(), sdk).span.status.status_code is StatusCode.ERROR


def test_health_probes_are_not_traced_but_get_an_id_and_a_debug_line(
    sdk: SDK, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="service.access"):
        run = Run(answer(), http_scope("/health/live", headers=[(b"user-agent", b"kube")]), sdk)
    assert run.spans == []
    assert len(run.headers[b"x-request-id"]) == 32
    [line] = access_lines(caplog)
    assert line["level"] == logging.DEBUG
    assert line["user_agent"] == "kube"


def test_an_exception_before_the_response_is_a_json_500_in_the_error_shape(
    sdk: SDK, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    metrics = AppMetrics(BuildInfo("api", "1", "x"))
    with caplog.at_level(logging.INFO):
        run = Run(crash, http_scope(headers=[(b"x-request-id", b"req-3")]), sdk, metrics)
    assert run.start["status"] == 500
    assert run.body == {"detail": "Internal Server Error", "request_id": "req-3"}
    assert run.headers[b"x-request-id"] == b"req-3"
    assert run.headers[b"x-app-version"] == b"1.2.3"
    assert run.headers[b"content-type"] == b"application/json"
    assert run.span.status.status_code is StatusCode.ERROR
    assert [e.name for e in run.span.events] == ["exception"]
    [error] = [r for r in caplog.records if getattr(r, "event", None) == "unhandled_exception"]
    assert error.__dict__["fields"]["error"] == "RuntimeError: boom"
    assert [line["status_code"] for line in access_lines(caplog)] == [500]
    assert duration_count(metrics, "GET", "", 500) == 1


def test_an_exception_after_the_response_started_sends_nothing_more(
    sdk: SDK, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash_midway(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("cut")

    with caplog.at_level(logging.INFO):
        run = Run(crash_midway, http_scope(), sdk)
    assert [m["type"] for m in run.sent] == ["http.response.start"]
    assert [line["status_code"] for line in access_lines(caplog)] == [500]  # not 200


def test_metrics_count_the_route_template_and_the_active_requests(sdk: SDK) -> None:
    metrics = AppMetrics(BuildInfo("api", "1", "x"))
    active: list[float | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        active.append(gauge("GET"))
        await answer(201, "/api/items")(scope, receive, send)

    def gauge(method: str) -> float | None:
        return metrics.registry.get_sample_value(
            "http_server_active_requests", {"http_request_method": method}
        )

    Run(app, http_scope("/api/items"), sdk, metrics)
    assert active == [1]
    assert gauge("GET") == 0
    assert duration_count(metrics, "GET", "/api/items", 201) == 1


def test_an_unrouted_request_has_an_empty_route_label(sdk: SDK) -> None:
    """The raw path never becomes a label value (a client could create any number)."""
    metrics = AppMetrics(BuildInfo("api", "1", "x"))
    Run(answer(404), http_scope("/random/123"), sdk, metrics)
    assert duration_count(metrics, "GET", "", 404) == 1
    assert duration_count(metrics, "GET", "/random/123", 404) is None


def test_an_unknown_method_is_counted_as_other(sdk: SDK) -> None:
    metrics = AppMetrics(BuildInfo("api", "1", "x"))
    Run(answer(405), http_scope(method="BREW"), sdk, metrics)
    assert duration_count(metrics, "_OTHER", "", 405) == 1
