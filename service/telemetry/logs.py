"""JSON logging for every logger in the process: one object per line on stdout.

Our own code logs through StructuredLogger (`log.info("event_name", **fields)`);
third-party loggers (gunicorn, uvicorn, OpenTelemetry, asyncio) go through the same
handler and formatter, so every line follows the log schema (docs/architecture.md).
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
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import get_current_span

from service.request import context

# Attributes every LogRecord has; anything else was passed through `extra=`.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
_SCHEMA_KEYS = ("timestamp", "level", "message", "service", "request_id")
_WORD = re.compile(r"[a-z]+")
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
# One record is one write(2) of at most PIPE_BUF bytes, newline included: POSIX makes
# such a write to a pipe atomic, so lines from several workers sharing stdout never
# interleave. Longer records (deep tracebacks) are shortened in the middle.
MAX_LINE_BYTES = select.PIPE_BUF - 1
# Line breaks to Unicode-aware readers (str.splitlines, older JavaScript) that JSON
# leaves raw with ensure_ascii=False: escaped, so client text cannot split a line.
_UNICODE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
MAX_TRACEBACK_CHARS = 2500


def _line_encoder() -> Callable[[dict[str, Any]], str]:
    """json.dumps(o, default=str, ensure_ascii=False, separators=(",", ":")), without
    building an encoder for every line: the C encoder made once. JSONEncoder.encode
    is the fallback where the C accelerator or its signature differs."""
    encoder = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        # markers=None: no circular-reference check (a cycle fails either way, and a
        # failing record goes to Handler.handleError as before).
        c_encode = make(
            None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True
        )
        sample = {"a": [1, 2.5, None, True, "é\n"], "b": {"c": object}}
        if "".join(c_encode(sample, 0)) != encoder.encode(sample):
            return encoder.encode
    except TypeError:
        return encoder.encode

    def encode(entry: dict[str, Any]) -> str:
        return "".join(c_encode(entry, 0))

    return encode


_encode = _line_encoder()
_LEVEL_NAMES = {name: name.lower() for name in logging.getLevelNamesMapping()}
_request_id = context.request_id.get
_user_id = context.user_id.get


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as one JSON object (no newline) following the log schema."""

    def __init__(self, service: str = "api") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        attributes = record.__dict__
        event = attributes.get("event")
        level = record.levelname
        entry: dict[str, Any] = {
            "timestamp": _rfc3339(record.created),
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
        entry: dict[str, Any] = {
            "timestamp": _rfc3339(time.time()),
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
            entry["traceback"] = _clip(str(entry["traceback"]), MAX_TRACEBACK_CHARS)
        line = _encode(entry)
        if not line.isascii():
            line = line.translate(_UNICODE_BREAKS)
        if len(line) > MAX_LINE_BYTES // 4:  # cheap check first; bytes can be 4x chars
            line = _bounded(entry, line)
        return line


def _bounded(entry: dict[str, Any], line: str) -> str:
    """Shrink the longest string fields until the encoded line fits MAX_LINE_BYTES."""
    while _utf8_size(line) > MAX_LINE_BYTES:
        key = max(
            (k for k in entry if k not in _SCHEMA_KEYS and isinstance(entry[k], str)),
            key=lambda k: len(entry[k]),
            default=None,
        )
        if key is None or len(entry[key]) < 64:
            break
        entry[key] = _clip(entry[key], len(entry[key]) // 2)
        entry["truncated"] = True
        line = _encode(entry).translate(_UNICODE_BREAKS)
    if _utf8_size(line) > MAX_LINE_BYTES:  # many small fields: keep the schema only
        kept = {k: entry[k] for k in (*_SCHEMA_KEYS, "trace_id", "span_id") if k in entry}
        line = json.dumps({**kept, "truncated": True}, default=str, separators=(",", ":"))
    return line


def _utf8_size(line: str) -> int:
    """Bytes the handler writes ("replace" as in JsonLineHandler: lone surrogates)."""
    return len(line.encode("utf-8", "replace"))


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ...[{len(text) - limit} chars cut]... {text[-half:]}"


# The formatted whole second of the last line: lines come many to a second.
_last_second: tuple[int, str] = (-1, "")


def _rfc3339(created: float) -> str:
    global _last_second
    second = int(created)
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, prefix)  # one tuple: threads see both or neither
    millis = int(created * 1000) % 1000
    return f"{prefix}.{millis:03d}Z"


def _add_trace_ids(entry: dict[str, Any]) -> None:
    span_context = get_current_span().get_span_context()
    if span_context.is_valid:
        entry["trace_id"] = format(span_context.trace_id, "032x")
        entry["span_id"] = format(span_context.span_id, "016x")


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
