"""JSON logging for every logger in the process: one object per line on stdout.

Our own code logs through StructuredLogger (`log.info("event_name", **fields)`);
third-party loggers (gunicorn, uvicorn, OpenTelemetry, asyncio) go through the same
handler and formatter, so every line follows the schema in DESIGN.md.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import select
import sys
import time
import traceback
from typing import Any

from opentelemetry import trace

from service import context

# Attributes every LogRecord has; anything else was passed through `extra=`.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
_SCHEMA_KEYS = ("timestamp", "level", "message", "service", "request_id")
_WORD = re.compile(r"[a-z]+")
# One record is one write(2) of at most PIPE_BUF bytes: POSIX makes such a write to a
# pipe atomic, so lines from several workers sharing stdout never interleave. Longer
# records (deep tracebacks) are shortened in the middle, keeping both ends.
MAX_LINE_BYTES = select.PIPE_BUF
MAX_TRACEBACK_CHARS = 2500


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as one JSON object (no newline) following the log schema."""

    def __init__(self, service: str = "api") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        fields: dict[str, Any] = (
            getattr(record, "fields", {}) if event is not None else _extra_fields(record)
        )
        entry: dict[str, Any] = {
            "timestamp": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "message": event or _event_name(record),
            "service": self.service,
            "request_id": context.request_id.get(),
        }
        if event is None:
            entry["logger"] = record.name
            entry["detail"] = record.getMessage()
        _add_trace_ids(entry)
        user = context.user_id.get()
        if user is not None:
            entry["user_id"] = user
        for key, value in fields.items():
            if key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None and "traceback" not in entry:
            exc = record.exc_info[1]
            entry.setdefault("error", f"{type(exc).__name__}: {exc}")
            entry["traceback"] = "".join(traceback.format_exception(exc))
        if "traceback" in entry:
            entry["traceback"] = _clip(str(entry["traceback"]), MAX_TRACEBACK_CHARS)
        line = json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))
        if len(line) > MAX_LINE_BYTES // 4:  # cheap check first; bytes can be 4x chars
            line = _bounded(entry, line)
        return line


def _bounded(entry: dict[str, Any], line: str) -> str:
    """Shrink the longest string fields until the encoded line fits MAX_LINE_BYTES."""
    while len(line.encode()) > MAX_LINE_BYTES:
        key = max(
            (k for k in entry if k not in _SCHEMA_KEYS and isinstance(entry[k], str)),
            key=lambda k: len(entry[k]),
            default=None,
        )
        if key is None or len(entry[key]) < 64:
            break
        entry[key] = _clip(entry[key], len(entry[key]) // 2)
        entry["truncated"] = True
        line = json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))
    if len(line.encode()) > MAX_LINE_BYTES:  # many small fields: keep the schema only
        kept = {k: entry[k] for k in (*_SCHEMA_KEYS, "trace_id", "span_id") if k in entry}
        line = json.dumps({**kept, "truncated": True}, default=str, separators=(",", ":"))
    return line


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ...[{len(text) - limit} chars cut]... {text[-half:]}"


def _rfc3339(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def _add_trace_ids(entry: dict[str, Any]) -> None:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        entry["trace_id"] = format(span_context.trace_id, "032x")
        entry["span_id"] = format(span_context.span_id, "016x")
        return
    trace_id = context.trace_id.get()
    if trace_id is not None:
        entry["trace_id"] = trace_id
        entry["span_id"] = context.span_id.get()


def _event_name(record: logging.LogRecord) -> str:
    """A snake_case event name for a third-party message ("Booting worker ..." ->
    "booting_worker_with_pid"); the full text goes to `detail`."""
    words = _WORD.findall(record.getMessage().lower())[:5]
    return "_".join(words) or "log"


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


class JsonLineHandler(logging.Handler):
    """Write each record as one line with a single write(2) to a file descriptor."""

    def __init__(self, fd: int | None = None) -> None:
        super().__init__()
        self.fd = sys.stdout.fileno() if fd is None else fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except Exception:
            self.handleError(record)


class StructuredLogger:
    """`log.info("event_name", key=value, ...)` over a standard logging.Logger."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: Any, fields: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(
                level,
                event,
                exc_info=exc_info,
                extra={"event": event, "fields": fields},
                stacklevel=3,
            )

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, None, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, None, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, None, fields)

    def error(self, event: str, exc_info: Any = None, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info, fields)

    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(name)


def logging_config(service: str, level: str) -> dict[str, Any]:
    """dictConfig for the whole process: gunicorn's master uses it as logconfig_dict,
    workers and tests apply it with configure_logging()."""
    handler = {"class": "service.logs.JsonLineHandler", "formatter": "json"}
    quiet = {"handlers": [], "propagate": False, "level": "CRITICAL"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.logs.JsonFormatter", "service": service}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level.upper()},
        "loggers": {
            "gunicorn.error": {"handlers": ["json"], "propagate": False, "level": level.upper()},
            # Access lines come from our AccessLogMiddleware, with request and trace ids.
            "gunicorn.access": quiet,
            "uvicorn.access": quiet,
            "uvicorn.error": {"handlers": ["json"], "propagate": False, "level": level.upper()},
            "uvicorn": {"handlers": ["json"], "propagate": False, "level": level.upper()},
        },
    }


def configure_logging(service: str, level: str) -> None:
    logging.config.dictConfig(logging_config(service, level))
    logging.captureWarnings(True)


def startup_error_line(message: str, service: str = "api") -> str:
    """The one JSON line printed when settings are invalid (logging is not set up yet)."""
    record = logging.makeLogRecord({"levelname": "CRITICAL", "msg": message})
    record.event = "invalid_configuration"
    record.fields = {"error": message}
    return JsonFormatter(service).format(record)
