"""The access line: its level, its one write path, and the line of a finished request
(ObservabilityMiddleware writes it; the HTTP parser's refusals use write_access_line)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Scope

from service.request.context import PROBE_PREFIX
from service.telemetry.logs import JsonFormatter, access_fields, direct_writer, get_logger

log = get_logger("service.access")
ACCESS_EVENT = "request_completed"
MAX_UA_CHARS = 512
_LEVEL_NAMES = {
    level: logging.getLevelName(level) for level in (logging.DEBUG, logging.INFO, logging.ERROR)
}


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


def log_request(
    scope: Scope, status: int, duration_ms: float, user_agent: str, slow_request_ms: int
) -> None:
    """A request's access line, and a slow_request warning above slow_request_ms."""
    path: str = scope["path"]
    level = access_level(status, path)
    slow = duration_ms > slow_request_ms
    client = scope.get("client")
    client_ip = client[0] if client else None
    if not slow:
        # The stock configuration: the line goes straight to our handler, its fields
        # written as text (JsonFormatter.format_access).
        handler = direct_writer(log.logger, level)
        if handler is not None:
            try:
                formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]
                handler.write_line(
                    formatter.format_access(
                        _LEVEL_NAMES[level],
                        scope["method"],
                        path,
                        status,
                        duration_ms,
                        client_ip,
                        user_agent,
                    )
                )
            except Exception:  # as the logging path would: report, go on
                handler.handleError(logging.makeLogRecord({"msg": ACCESS_EVENT, "levelno": level}))
            return
        if not log.isEnabledFor(level):
            return
    fields = access_fields(scope["method"], path, status, duration_ms, client_ip, user_agent)
    write_access_line(level, fields)
    if slow:
        log.warning("slow_request", **fields, threshold_ms=slow_request_ms)
