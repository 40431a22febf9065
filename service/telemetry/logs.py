"""JSON logging for every logger in the process: one object per line on stdout.

Our own code logs through StructuredLogger (`log.info("event_name", **fields)`);
third-party loggers (gunicorn, uvicorn, OpenTelemetry, asyncio) go through the same
handler and formatter, so every line follows the log schema (docs/architecture.md).
"""

from __future__ import annotations

import logging
import logging.config
import math
import os
import re
import sys
import time
import traceback
from typing import Any

from service.request import context
from service.telemetry.current_span import IS_VALID, SPAN_ID, TRACE_ID, current_span_context
from service.telemetry.json_line import (
    MAX_LINE_BYTES,
    SCHEMA_KEYS,
    UNICODE_BREAKS,
    bounded,
    clip,
    encode,
    json_string,
    rfc3339,
)

# Attributes every LogRecord has; anything else was passed through `extra=`.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
_WORD = re.compile(r"[a-z]+")
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
MAX_TRACEBACK_CHARS = 2500
# The keys format_event writes before an event's fields (and the one _finish rewrites).
_HEAD_KEYS = frozenset({*SCHEMA_KEYS, "trace_id", "span_id", "user_id", "traceback"})
_LEVEL_NAMES = {name: name.lower() for name in logging.getLevelNamesMapping()}
_LEVEL_JSON = {name: json_string(lower) for name, lower in _LEVEL_NAMES.items()}
_request_id = context.request_id.get
_user_id = context.user_id.get


def access_fields(
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    client_ip: str | None,
    user_agent: str,
) -> dict[str, Any]:
    """An access line's fields, in the schema's order (docs/architecture.md)."""
    return {
        "method": method,
        "path": path,
        "status_code": status,
        "duration_ms": duration_ms,
        "client_ip": client_ip,
        "user_agent": user_agent,
    }


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as one JSON object (no newline) following the log schema."""

    def __init__(self, service: str = "api") -> None:
        super().__init__()
        self.service = service
        self.service_json = encode(service)

    def format(self, record: logging.LogRecord) -> str:
        attributes = record.__dict__
        event = attributes.get("event")
        level = record.levelname
        entry: dict[str, Any] = {
            "timestamp": rfc3339(record.created),
            "level": _LEVEL_NAMES.get(level) or level.lower(),
            "message": event or _event_name(record),
            "service": self.service,
            "request_id": _request_id(),
        }
        if event is None:
            entry["logger"] = record.name
            entry["detail"] = record.getMessage()
            fields = _extra_fields(record)
        else:
            fields = attributes.get("fields") or {}
        return self._finish(entry, fields, record.exc_info)

    def format_event(self, levelname: str, event: str, fields: dict[str, Any]) -> str:
        """What format() gives for a StructuredLogger record of `event` made now, without
        the record (the access log's direct path, see direct_writer)."""
        if fields.keys().isdisjoint(_HEAD_KEYS):
            tail = f",{encode(fields)[1:]}" if fields else "}"
            line = self._text_line(levelname, event, tail)
            if line is not None:
                return line
        return self.format_event_entry(levelname, event, fields)

    def format_access(
        self,
        levelname: str,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        client_ip: str | None,
        user_agent: str,
    ) -> str:
        """format_event(levelname, "request_completed", the access fields), the fields
        written as text too (tests/unit/telemetry/test_logs.py compares the two)."""
        if (
            type(method) is str
            and type(path) is str
            and type(status) is int
            and type(duration_ms) is float
            and math.isfinite(duration_ms)
            and (client_ip is None or type(client_ip) is str)
            and type(user_agent) is str
        ):
            line = self._text_line(
                levelname,
                "request_completed",
                f',"method":{json_string(method)},"path":{json_string(path)},'
                f'"status_code":{status!r},"duration_ms":{duration_ms!r},"client_ip":'
                f"{'null' if client_ip is None else json_string(client_ip)},"
                f'"user_agent":{json_string(user_agent)}}}',
            )
            if line is not None:
                return line
        fields = access_fields(method, path, status, duration_ms, client_ip, user_agent)
        return self.format_event_entry(levelname, "request_completed", fields)

    def _text_line(self, levelname: str, event: str, tail: str) -> str | None:
        """The line of format_event_entry written as text: the schema's keys, then `tail`
        (the fields' JSON without its "{", or "}"). The same characters for about half
        the cost (`make bench`'s floors, bench/README.md). None where that path is needed:
        an unknown level, a request id that is not a str, a line that may be too long."""
        request_id = _request_id()
        level = _LEVEL_JSON.get(levelname)
        if level is None or type(event) is not str:
            return None
        if request_id is None:
            request_id = "null"
        elif type(request_id) is str:
            request_id = json_string(request_id)
        else:
            return None
        line = (
            f'{{"timestamp":"{rfc3339(time.time())}","level":{level},'
            f'"message":{json_string(event)},"service":{self.service_json},'
            f'"request_id":{request_id}'
        )
        span_context = current_span_context()
        if span_context[IS_VALID]:
            line = (
                f'{line},"trace_id":"{span_context[TRACE_ID].to_bytes(16, "big").hex()}",'
                f'"span_id":"{span_context[SPAN_ID].to_bytes(8, "big").hex()}"'
            )
        user = _user_id()
        if user is not None:
            line = f'{line},"user_id":{encode(user)}'
        line += tail
        if not line.isascii():
            line = line.translate(UNICODE_BREAKS)
        if len(line) > MAX_LINE_BYTES // 4:  # maybe too long: the entry's path bounds it
            return None
        return line

    def format_event_entry(self, levelname: str, event: str, fields: dict[str, Any]) -> str:
        """format_event() through the whole entry (and _finish's rules for long lines)."""
        entry: dict[str, Any] = {
            "timestamp": rfc3339(time.time()),
            "level": _LEVEL_NAMES.get(levelname) or levelname.lower(),
            "message": event,
            "service": self.service,
            "request_id": _request_id(),
        }
        return self._finish(entry, fields, None)

    def _finish(self, entry: dict[str, Any], fields: dict[str, Any], exc_info: Any) -> str:
        """Trace ids, user, fields and traceback added to `entry`; the bounded line."""
        _add_trace_ids(entry)
        user = _user_id()
        if user is not None:
            entry["user_id"] = user
        if entry.keys().isdisjoint(fields):
            entry.update(fields)
        else:  # fields never overwrite the schema's keys
            for key, value in fields.items():
                if key not in entry:
                    entry[key] = value
        if exc_info and exc_info[1] is not None and "traceback" not in entry:
            exc = exc_info[1]
            entry.setdefault("error", f"{type(exc).__name__}: {exc}")
            entry["traceback"] = "".join(traceback.format_exception(exc))
        if "traceback" in entry:
            entry["traceback"] = clip(str(entry["traceback"]), MAX_TRACEBACK_CHARS)
        line = encode(entry)
        if not line.isascii():
            line = line.translate(UNICODE_BREAKS)
        if len(line) > MAX_LINE_BYTES // 4:  # cheap check first; bytes can be 4x chars
            line = bounded(entry, line)
        return line


def _add_trace_ids(entry: dict[str, Any]) -> None:
    span_context = current_span_context()
    if span_context[IS_VALID]:
        # Lower-case hex, zero-padded: format(..., "032x") at half the cost.
        entry["trace_id"] = span_context[TRACE_ID].to_bytes(16, "big").hex()
        entry["span_id"] = span_context[SPAN_ID].to_bytes(8, "big").hex()


def _event_name(record: logging.LogRecord) -> str:
    """A snake_case event name for a third-party message ("Booting worker ..." ->
    "booting_worker_with_pid"); the full text goes to `detail`. Taken from the message's
    template without its %-placeholders, so the name stays the same whatever the values
    ("Handling signal: %s" -> "handling_signal" for term and int alike)."""
    text = record.msg if isinstance(record.msg, str) else str(record.msg)
    if record.args:
        text = _PLACEHOLDER.sub(" ", text)
    words = _WORD.findall(text.lower())[:5]
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
            self.write_line(self.format(record))
        except Exception:
            self.handleError(record)

    def write_event(self, levelname: str, event: str, fields: dict[str, Any]) -> None:
        """format_event()'s line, written: the direct path (see direct_writer)."""
        formatter = self.formatter
        if not isinstance(formatter, JsonFormatter):
            raise TypeError("write_event needs a JsonFormatter (direct_writer checks it)")
        self.write_line(formatter.format_event(levelname, event, fields))

    def write_line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        while data:
            written = os.write(self.fd, data)
            data = data[written:]


def direct_writer(logger: logging.Logger, level: int) -> JsonLineHandler | None:
    """The one JsonLineHandler (with a JsonFormatter) that a `level` record of `logger`
    would reach, when nothing else would see the record: no filter on the logger or the
    handler, no other handler on the way up, the standard record factory. Then a caller
    may write format_event()'s line to it directly, skipping the record and the logging
    dispatch (see write_access_line); any other configuration (a test's capture
    handler, a user's filter) gets None and the usual path. Checked on every call, so
    configuration changes apply at once."""
    if logger.filters or logger.disabled or not logger.isEnabledFor(level):
        return None
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found: JsonLineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or type(handler) is not JsonLineHandler:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if (
        found is None
        or found.filters
        or level < found.level
        or type(found.formatter) is not JsonFormatter
    ):
        return None
    return found


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

    def log(self, level: int, event: str, **fields: Any) -> None:
        self._log(level, event, None, fields)

    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(name)


def logging_config(service: str, level: str) -> dict[str, Any]:
    """dictConfig for the whole process: gunicorn's master uses it as logconfig_dict,
    workers and tests apply it with configure_logging()."""
    handler = {"class": "service.telemetry.logs.JsonLineHandler", "formatter": "json"}
    quiet = {"handlers": [], "propagate": False, "level": "CRITICAL"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.telemetry.logs.JsonFormatter", "service": service}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level.upper()},
        "loggers": {
            "gunicorn.error": {"handlers": ["json"], "propagate": False, "level": level.upper()},
            # Access lines come from our ObservabilityMiddleware, with request and trace ids.
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
