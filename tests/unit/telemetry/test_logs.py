from __future__ import annotations

import json
import logging
import os
import re
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from service.request import context
from service.telemetry.json_line import MAX_LINE_BYTES
from service.telemetry.logs import (
    JsonFormatter,
    JsonLineHandler,
    StructuredLogger,
    logging_config,
    startup_error_line,
)

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Every character str.splitlines() ends a line at (a reader may split there).
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _record(event: str | None = "thing_happened", **fields: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": event or "Plain text"})
    if event:
        record.event = event
        record.fields = fields
    return record


def test_schema_fields_always_present() -> None:
    entry = json.loads(JsonFormatter("svc").format(_record(a=1)))
    assert TIMESTAMP.fullmatch(entry["timestamp"])
    assert entry["level"] == "info"
    assert entry["message"] == "thing_happened"
    assert entry["service"] == "svc"
    assert entry["request_id"] is None
    assert entry["a"] == 1


def test_fields_cannot_overwrite_schema_keys() -> None:
    token = context.request_id.set("real-id")
    try:
        line = JsonFormatter().format(
            _record(message="forged", level="critical", request_id="x", service="evil")
        )
    finally:
        context.request_id.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "thing_happened"
    assert entry["level"] == "info"
    assert entry["request_id"] == "real-id"
    assert entry["service"] == "api"


def test_third_party_messages_get_a_snake_case_event_and_detail() -> None:
    record = logging.makeLogRecord(
        {
            "name": "gunicorn.error",
            "levelname": "INFO",
            "msg": "Booting worker with pid: %s",
            "args": (42,),
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "booting_worker_with_pid"
    assert entry["detail"] == "Booting worker with pid: 42"
    assert entry["logger"] == "gunicorn.error"


def test_third_party_event_names_do_not_depend_on_the_values() -> None:
    def event(msg: str, *args: object) -> str:
        record = logging.LogRecord("gunicorn.error", logging.INFO, "", 0, msg, args, None)
        return str(json.loads(JsonFormatter().format(record))["message"])

    assert event("Handling signal: %s", "term") == event("Handling signal: %s", "int")
    assert event("Handling signal: %s", "term") == "handling_signal"
    assert event("Listening at: %s (%s)", "http://0.0.0.0:8000", 7) == "listening_at"
    assert event("Started server process [%d]", 12) == "started_server_process"
    assert event("Worker (pid:%(pid)s) was sent %(sig)s!", {"pid": 3, "sig": "TERM"}) == (
        "worker_pid_was_sent"
    )
    assert event("100% done") == "done"  # no args: the text is not a template


def test_exception_gives_error_and_traceback() -> None:
    try:
        raise ValueError("bad thing")
    except ValueError as exc:
        record = _record("unhandled_exception")
        record.exc_info = (type(exc), exc, exc.__traceback__)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["error"] == "ValueError: bad thing"
    assert "Traceback" in entry["traceback"]


def test_huge_record_is_bounded_and_still_json() -> None:
    line = JsonFormatter().format(_record(detail="x" * 200_000, other="é" * 50_000))
    assert len(line.encode()) <= MAX_LINE_BYTES
    entry = json.loads(line)
    assert entry["truncated"] is True
    assert entry["message"] == "thing_happened"


def test_many_small_fields_still_fit() -> None:
    line = JsonFormatter().format(_record(**{f"field_{i}": "y" * 40 for i in range(300)}))
    assert len(line.encode()) <= MAX_LINE_BYTES
    assert json.loads(line)["truncated"] is True


def test_line_breaks_are_every_character_splitlines_splits_at() -> None:
    found = [c for c in map(chr, range(0x110000)) if len(f"a{c}b".splitlines()) == 2]
    assert found == sorted(LINE_BREAKS)


def test_every_line_break_is_escaped() -> None:
    text = "".join(f"{c}x" for c in LINE_BREAKS)
    line = JsonFormatter().format(_record(**{f"key{LINE_BREAKS}": text}))
    assert [c for c in LINE_BREAKS if c in line] == []
    assert line.splitlines() == [line]
    assert json.loads(line)[f"key{LINE_BREAKS}"] == text


@given(st.text(), st.text())
def test_any_text_stays_one_json_line(key: str, value: str) -> None:
    line = JsonFormatter().format(_record(**{key or "k": value}))
    assert line.splitlines() == [line]
    assert json.loads(line)["message"] == "thing_happened"


def test_handler_writes_one_line_per_record() -> None:
    read_fd, write_fd = os.pipe()
    handler = JsonLineHandler(write_fd)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.handler")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        StructuredLogger("test.handler").info("one", text=f"line{LINE_BREAKS}break")
        StructuredLogger("test.handler").warning("two")
    finally:
        logger.removeHandler(handler)
        os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8", newline="") as reader:
        written = reader.read()
    # Two records, two newlines, and no other line break anywhere.
    assert written.count("\n") == 2 and written.endswith("\n")
    assert [c for c in LINE_BREAKS if c in written.replace("\n", "")] == []
    lines = written.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["one", "two"]
    assert json.loads(lines[0])["text"] == f"line{LINE_BREAKS}break"


def test_level_filtering_from_config() -> None:
    config = logging_config("svc", "warning")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"]["handlers"] == []


def test_startup_error_line() -> None:
    entry = json.loads(startup_error_line("invalid environment variable X: bad"))
    assert entry["message"] == "invalid_configuration"
    assert entry["level"] == "critical"
    assert entry["error"] == "invalid environment variable X: bad"


TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ['"quoted"', "back\\slash", "\u2028\x85\u2029", "\x00\x1f", "é€😀", "x" * 700]
)
VALUES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT


@given(
    fields=st.dictionaries(TEXT.filter(lambda k: k not in {"truncated"}), VALUES, max_size=6),
    event=TEXT,
    request_id=st.none() | TEXT,
    user=st.none() | TEXT,
    level=st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR", "Level 25"]),
    traced=st.booleans(),
)
def test_text_lines_equal_the_encoded_entry(
    fields: dict[str, object],
    event: str,
    request_id: str | None,
    user: str | None,
    level: str,
    traced: bool,
) -> None:
    """format_event writes the schema's keys as text: the same line as encoding the whole
    entry, whatever the values (and long ones take the entry's path, which bounds them)."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    formatter = JsonFormatter("svc\u2028")
    span = NonRecordingSpan(SpanContext(2**127 + 5, 2**63 + 7, False, TraceFlags(1)))
    tokens = [context.request_id.set(request_id), context.user_id.set(user)]
    otel_token = otel_context.attach(trace.set_span_in_context(span)) if traced else None
    try:
        with patch("time.time", return_value=1_700_000_000.1234):
            line = formatter.format_event(level, event, fields)
            assert line == formatter.format_event_entry(level, event, fields)
    finally:
        if otel_token is not None:
            otel_context.detach(otel_token)
        context.user_id.reset(tokens[1])
        context.request_id.reset(tokens[0])


@given(
    method=TEXT,
    path=TEXT,
    status=st.integers(100, 599),
    duration_ms=st.floats(0, 1e9, allow_nan=False) | st.sampled_from([1.0, 0.1, 1e16, 5e-324]),
    client_ip=st.none() | TEXT,
    user_agent=TEXT,
)
def test_access_text_line_equals_the_encoded_entry(
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    client_ip: str | None,
    user_agent: str,
) -> None:
    formatter = JsonFormatter()
    fields = {
        "method": method,
        "path": path,
        "status_code": status,
        "duration_ms": duration_ms,
        "client_ip": client_ip,
        "user_agent": user_agent,
    }
    with patch("time.time", return_value=1_700_000_000.9999):
        line = formatter.format_access(
            "INFO", method, path, status, duration_ms, client_ip, user_agent
        )
        assert line == formatter.format_event_entry("INFO", "request_completed", fields)
