"""AccessLogMiddleware: request id, one access line per request, JSON 500 on crashes; the
request's metrics (duration by route template, active requests) and X-App-Version.

The product runs these rules inside ObservabilityMiddleware (observability.py), one layer
with the server span; this class alone is the same without the span (`make bench`'s
full-split variant puts it back under TracingMiddleware)."""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request import context
from service.request.context import PROBE_PREFIX
from service.request.errors import send_error
from service.request.request_id import accept_or_generate
from service.telemetry.logs import direct_writer, get_logger
from service.telemetry.metrics import AppMetrics

log = get_logger("service.access")
ACCESS_EVENT = "request_completed"
MAX_UA_CHARS = 512


def access_level(status: int, path: str) -> int:
    """5xx at error; probes every few seconds at debug; everything else at info."""
    if status >= 500:
        return logging.ERROR
    if path.startswith(PROBE_PREFIX):
        return logging.DEBUG
    return logging.INFO


def write_access_line(level: int, fields: dict[str, Any]) -> None:
    """The one way an access line is written. With the stock logging configuration the
    line goes straight to our handler (direct_writer: `make bench` found the record and
    the logging dispatch to cost about two thirds of the line); any other configuration
    (a capture handler, a user's filter) takes the usual logging path."""
    handler = direct_writer(log.logger, level)
    if handler is None:
        log.log(level, ACCESS_EVENT, **fields)
        return
    try:
        handler.write_event(logging.getLevelName(level), ACCESS_EVENT, fields)
    except Exception:  # as the logging path would: report, go on
        handler.handleError(logging.makeLogRecord({"msg": ACCESS_EVENT, "levelno": level}))


class AccessLogMiddleware:
    """Also the one place that observes a request's metrics: it already knows the method,
    the status (500 for a crash) and the duration, and the route template is in the scope
    once the router has run; a third wrapping middleware would cost a layer per request."""

    def __init__(
        self,
        app: ASGIApp,
        slow_request_ms: int,
        metrics: AppMetrics | None = None,
        app_version: str | None = None,
    ) -> None:
        self.app = app
        self.slow_request_ms = slow_request_ms
        self.metrics = metrics
        # Which build answered, on every response (the drill counts them per version).
        self.version_header = (
            (b"x-app-version", app_version.encode("ascii")) if app_version else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming_id = None
        user_agent = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming_id = value
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")[:MAX_UA_CHARS]
        request_id = accept_or_generate(incoming_id)
        request_token = context.request_id.set(request_id)
        user_token = context.user_id.set(None)
        header = (b"x-request-id", request_id.encode())
        extra_headers = [header] if self.version_header is None else [header, self.version_header]
        status = 500
        response_started = False
        metrics = self.metrics
        active = None
        if metrics is not None:
            active = metrics.active(scope["method"])
            active.inc()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            status = 500
            span = trace.get_current_span()
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            log.error(
                "unhandled_exception",
                exc_info=exc,
                method=scope["method"],
                path=scope["path"],
                error=f"{type(exc).__name__}: {exc}",
            )
            if not response_started:
                await send_error(send, 500, "Internal Server Error", extra_headers)
        finally:
            seconds = time.perf_counter() - started
            if metrics is not None and active is not None:
                active.dec()
                # The template, never the raw path: "" when no route matched (a 404).
                route = getattr(scope.get("route"), "path", "")
                metrics.observe_request(scope["method"], route, status, seconds)
            duration_ms = round(seconds * 1000, 2)
            self._log(scope, status, duration_ms, user_agent)
            context.request_id.reset(request_token)
            context.user_id.reset(user_token)

    def _log(self, scope: Scope, status: int, duration_ms: float, user_agent: str) -> None:
        path: str = scope["path"]
        level = access_level(status, path)
        slow = duration_ms > self.slow_request_ms
        if not (slow or log.isEnabledFor(level)):
            return
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "path": path,
            "status_code": status,
            "duration_ms": duration_ms,
            "client_ip": client[0] if client else None,
            "user_agent": user_agent,
        }
        write_access_line(level, fields)
        if slow:
            log.warning("slow_request", **fields, threshold_ms=self.slow_request_ms)
