"""Log integrity: 4 workers under load write records that would exceed PIPE_BUF unbounded,
all into one real pipe that is kept full; every line must stay one whole JSON object."""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from service.telemetry.logs import JsonFormatter
from tests.resilience.harness import Load, PipeReader, PipeService
from tools.testbed.jsonlines import parse_json_lines

pytestmark = pytest.mark.resilience
PIPE_BYTES = 16384
# A UA the access log clips to 512 chars; Latin-1 bytes above 0x7f become 2 UTF-8 bytes.
LONG_USER_AGENT = "agent-\xe9-" * 100
# Request targets just under the 8190-byte limit whose logged path is far over 4 KB:
# control characters are escaped to 6 bytes each in JSON, quotes and backslashes to 2.
TARGETS = [
    "/api/" + "a" * 8000,
    "/api/" + "%01%22%5C" * 880,
    "/api/" + "%C3%A9%E2%82%AC" * 530,
]


def pick(thread: int, i: int) -> tuple[str, str, bytes | None]:
    kind = (thread + i) % 5
    if kind == 0:
        return "GET", "/api/error", None  # unhandled_exception with its traceback
    if kind == 4:
        return "GET", "/api/ping", None
    return "GET", TARGETS[kind - 1], None


def parse_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    for number, line in enumerate(lines[:-1], 1):
        assert len(line) <= select.PIPE_BUF, f"line {number} has {len(line)} bytes"
    records = parse_json_lines(b"\n".join(lines).decode())
    for number, record in enumerate(records, 1):
        assert {"timestamp", "level", "message", "service", "request_id"} <= set(record), number
    return records


def test_four_workers_never_interleave_lines_in_a_full_pipe() -> None:
    service = PipeService(
        env={"WEB_CONCURRENCY": "4", "SLOW_REQUEST_MS": "100000"}, pipe_bytes=PIPE_BYTES
    ).start(wait="/health/ready")
    try:
        with Load(
            service.port,
            pick,
            threads=6,
            max_requests=250,
            deadline_s=12,
            timeout_s=30,
            headers={"User-Agent": LONG_USER_AGENT},
        ) as load:
            load.threads[0].join(15)
    finally:
        service.finish()

    outcomes = load.snapshot()
    failed = [o for o in outcomes if o.status is None]
    assert not failed, [o.error for o in failed[:5]]
    assert len(outcomes) >= 200, f"only {len(outcomes)} requests completed"
    records = parse_lines(service.pipe.lines())

    # The load produced records over 4 KB: they were shortened, not split.
    shortened = [r for r in records if r.get("truncated")]
    tracebacks = [r for r in records if r["message"] == "unhandled_exception"]
    assert len(shortened) >= 50, len(shortened)
    assert len(tracebacks) >= 20
    assert all("Traceback" in str(r["traceback"]) for r in tracebacks)
    # Writers really blocked on a full pipe (where an unbounded write would tear).
    assert service.pipe.max_queued >= PIPE_BYTES - select.PIPE_BUF, service.pipe.max_queued

    # Every request was logged exactly once, under its own request id.
    sent = Counter(o.headers["x-request-id"] for o in outcomes)
    assert max(sent.values()) == 1
    # (The readiness polls before the load are logged too: a 503 while starting up is
    # an error-level line. They are not the load's requests.)
    access = [
        r
        for r in records
        if r["message"] == "request_completed" and not str(r["path"]).startswith("/health/")
    ]
    logged = Counter(r["request_id"] for r in access)
    unmatched = [r for r in access if r["request_id"] not in sent]
    assert logged == sent, (set(sent) - set(logged), unmatched, len(outcomes))
    statuses = Counter(o.status for o in outcomes)
    assert set(statuses) <= {200, 404, 500}, statuses
    print(
        f"\nlog integrity: {len(outcomes)} requests {dict(statuses)}, 0 failed;"
        f" {len(records)} lines checked, {len(shortened)} shortened,"
        f" {len(tracebacks)} tracebacks; pipe held up to {service.pipe.max_queued} bytes"
    )


WRITER = """
import json, os, sys
line = json.dumps({"writer": sys.argv[1], "pad": sys.argv[1] * int(sys.argv[2])}) + "\\n"
for _ in range(int(sys.argv[3])):
    os.write(1, line.encode())
"""


def test_control_writes_over_the_pipe_size_do_tear_in_the_same_pipe() -> None:
    """Four plain writers, each record ~3x the pipe in one write(2): the same pipe and
    reader see torn lines, so the check above is able to fail."""
    pipe = PipeReader(PIPE_BYTES)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n), str(PIPE_BYTES * 3), "30"],
            stdout=pipe.write_fd,
        )
        for n in range(4)
    ]
    pipe.writers_started()
    for writer in writers:
        assert writer.wait(60) == 0
    pipe.join()
    lines = pipe.lines()[:-1]
    torn = 0
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            torn += 1
    assert torn > 0, f"{len(lines)} lines, none torn"
    print(f"\ncontrol: {torn} of {len(lines)} lines torn by writes over the pipe size")


def test_formatter_bounds_every_record_and_its_newline_to_pipe_buf() -> None:
    """A record is one atomic write only if it is at most PIPE_BUF bytes newline
    included; field sizes around the bound are tried one by one."""
    formatter = JsonFormatter("api")
    too_long = []
    for size in range(3000, 12000):
        record = logging.makeLogRecord({"levelname": "INFO", "msg": "x"})
        record.event = "request_completed"
        record.fields = {"path": "/" + "p" * size, "user_agent": "u" * 512}
        written = len((formatter.format(record) + "\n").encode())
        if written > select.PIPE_BUF:
            too_long.append((size, written))
    assert not too_long, f"{len(too_long)} writes over PIPE_BUF, e.g. {too_long[:3]}"


def test_formatter_survives_a_long_field_with_a_lone_surrogate() -> None:
    formatter = JsonFormatter("api")
    record = logging.makeLogRecord({"levelname": "ERROR", "msg": "x"})
    record.event = "unhandled_exception"
    record.fields = {"error": "ValueError: \ud800" + "a" * 5000}
    line = formatter.format(record)
    assert len(line.encode("utf-8", "replace")) <= select.PIPE_BUF


def test_client_text_cannot_break_a_line_for_unicode_aware_readers() -> None:
    formatter = JsonFormatter("api")
    record = logging.makeLogRecord({"levelname": "INFO", "msg": "x"})
    record.event = "request_completed"
    record.fields = {"path": "/api/a\x85b\u2028c\u2029d", "user_agent": "ua\x85"}
    line = formatter.format(record)
    assert line.splitlines() == [line]
