"""AccessLogMiddleware: request id, one access line per request, JSON 500 on crashes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import context
from service.logs import direct_writer, get_logger
from service.request_id import accept_or_generate

log = get_logger("service.access")
QUIET_PREFIXES = ("/health/",)  # probes every few seconds: debug level, not info
MAX_UA_CHARS = 512
# What LogRecord.__init__ computes the same way for every access line (file, module,
# function, process name); `make bench` found Logger.log's caller lookup and record
# building to cost more than the JSON formatting itself.
_RECORD_TEMPLATE = logging.LogRecord(
    log.logger.name, logging.INFO, __file__, 0, "request_completed", (), None, "_log"
).__dict__
_START_TIME: float = getattr(logging, "_startTime", time.time())
# Python >= 3.12 records the asyncio task's name too.
_TASK_NAMES = "taskName" in _RECORD_TEMPLATE and getattr(logging, "logAsyncioTasks", False)


def access_record(level: int, fields: dict[str, Any]) -> logging.LogRecord:
    """The record `log.logger.log(level, "request_completed", extra=...)` would make,
    built from a template; only the clock, thread and process are read per line."""
    if logging.getLogRecordFactory() is not logging.LogRecord:  # someone wants their own
        return log.logger.makeRecord(
            log.logger.name,
            level,
            __file__,
            0,
            "request_completed",
            (),
            None,
            "_log",
            {"event": "request_completed", "fields": fields},
        )
    record = logging.LogRecord.__new__(logging.LogRecord)
    attributes = record.__dict__
    attributes.update(_RECORD_TEMPLATE)
    created = time.time()
    attributes["created"] = created
    attributes["msecs"] = (created - int(created)) * 1000
    attributes["relativeCreated"] = (created - _START_TIME) * 1000
    attributes["levelno"] = level
    attributes["levelname"] = logging.getLevelName(level)
    attributes["thread"] = threading.get_ident()
    attributes["threadName"] = threading.current_thread().name
    attributes["process"] = os.getpid()
    if _TASK_NAMES:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop
            task = None
        attributes["taskName"] = task.get_name() if task is not None else None
    attributes["event"] = "request_completed"
    attributes["fields"] = fields
    return record


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, slow_request_ms: int) -> None:
        self.app = app
        self.slow_request_ms = slow_request_ms

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
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                message["headers"] = [*message.get("headers", []), header]
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
                await _send_json_500(send, request_id, header)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            self._log(scope, status, duration_ms, user_agent)
            context.request_id.reset(request_token)
            context.user_id.reset(user_token)

    def _log(self, scope: Scope, status: int, duration_ms: float, user_agent: str) -> None:
        path: str = scope["path"]
        if status >= 500:
            level = logging.ERROR
        elif path.startswith(QUIET_PREFIXES):
            level = logging.DEBUG
        else:
            level = logging.INFO
        slow = duration_ms > self.slow_request_ms
        enabled = log.isEnabledFor(level)
        if not (enabled or slow):
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
        if enabled:
            handler = direct_writer(log.logger, level)
            if handler is not None:
                try:
                    handler.write_event(logging.getLevelName(level), "request_completed", fields)
                except Exception:  # as the logging path would: report, go on
                    handler.handleError(access_record(level, fields))
            else:
                log.logger.handle(access_record(level, fields))
        if slow:
            log.warning("slow_request", **fields, threshold_ms=self.slow_request_ms)


async def _send_json_500(send: Send, request_id: str, header: tuple[bytes, bytes]) -> None:
    body = json.dumps({"detail": "Internal Server Error", "request_id": request_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                header,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
