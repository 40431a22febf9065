"""Log parsing for the e2e suite: JSON lines, trace ids, shutdown order across workers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e import logs
from tests.e2e.logs import SHUTDOWN_EVENTS


def line(message: str, **fields: Any) -> str:
    record = {"timestamp": "2026-01-02T03:04:05.678Z", "level": "info", "message": message}
    return json.dumps(record | fields)


def test_parse_keeps_objects_and_reports_everything_else() -> None:
    text = "\n".join(
        [line("a"), "", "not json", "[1, 2]", line("b", trace_id="ab" * 16), '{"half":']
    )
    parsed = logs.parse_log(text + "\n")
    assert parsed.messages() == ["a", "b"]
    assert [n for n, _ in parsed.bad_lines] == [3, 4, 6]
    assert logs.describe_bad_lines("pod-1", parsed, limit=1) == ["pod-1 line 3: 'not json'"]
    assert logs.with_trace(parsed.records, "ab" * 16) == [parsed.records[1]]


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert logs.parse_timestamp("2026-01-02T03:04:05.678Z") == datetime(
        2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC
    )


def records(*messages: str, **fields: Any) -> list[dict[str, Any]]:
    return [json.loads(line(m, **fields)) for m in messages]


def test_one_worker_in_order_passes() -> None:
    recs = records("request_completed", *SHUTDOWN_EVENTS, signal="SIGTERM")
    assert logs.shutdown_problems(recs) == []
    assert logs.sigterm_at(recs) == logs.parse_timestamp("2026-01-02T03:04:05.678Z")


def test_two_workers_interleaved_pass() -> None:
    a, b = list(SHUTDOWN_EVENTS), list(SHUTDOWN_EVENTS)
    # B (idle) finishes while A still waits for its long request.
    order = a[:3] + b[:3] + b[3:] + a[3:]
    assert logs.interleaving_problems(order, SHUTDOWN_EVENTS) == []


def test_out_of_order_missing_and_extra_events_are_reported() -> None:
    swapped = list(SHUTDOWN_EVENTS)
    swapped[4], swapped[5] = swapped[5], swapped[4]  # redis closed before the database
    (problem, *_) = logs.interleaving_problems(swapped, SHUTDOWN_EVENTS)
    assert problem.startswith("redis_closed (#1) came before its database_closed")
    missing = [e for e in SHUTDOWN_EVENTS if e != "requests_drained"]
    assert any("requests_drained: 0 lines for 1 worker" in p for p in
               logs.interleaving_problems(missing, SHUTDOWN_EVENTS))  # fmt: skip
    assert logs.interleaving_problems([], SHUTDOWN_EVENTS) == ["no shutdown_started line"]
    two_starts = ["shutdown_started", *SHUTDOWN_EVENTS]
    assert "shutdown_complete: 1 lines for 2 worker(s)" in logs.interleaving_problems(
        two_starts, SHUTDOWN_EVENTS
    )


@given(st.integers(1, 4), st.randoms(use_true_random=False))
def test_any_interleaving_of_complete_sequences_passes(workers: int, rnd: Any) -> None:
    queues = [list(SHUTDOWN_EVENTS) for _ in range(workers)]
    merged: list[str] = []
    while any(queues):
        queue = rnd.choice([q for q in queues if q])
        merged.append(queue.pop(0))
    assert logs.interleaving_problems(merged, SHUTDOWN_EVENTS) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (line("grace_period_exceeded", in_flight=1), "grace_period_exceeded"),
        (line("redis_close_failed", error="TimeoutError: x"), "redis_close_failed"),
        (line("worker_timeout", detail="Worker (pid:7) was sent SIGKILL! Perhaps out of memory?"),
         "SIGKILL"),
        (line("shutdown_started", signal="SIGINT"), "expected SIGTERM only"),
    ],
)  # fmt: skip
def test_a_cut_drain_or_a_sigkill_is_a_problem(bad: str, expected: str) -> None:
    recs = [*records(*SHUTDOWN_EVENTS, signal="SIGTERM"), json.loads(bad)]
    assert any(expected in p for p in logs.shutdown_problems(recs))


def test_last_timestamp_and_no_sigterm() -> None:
    recs = records("startup_complete")
    assert logs.sigterm_at(recs) is None
    assert logs.last_timestamp(recs) == logs.parse_timestamp("2026-01-02T03:04:05.678Z")
    assert logs.last_timestamp([]) is None


def test_one_trace_over_two_releases() -> None:
    trace, request = "ab" * 16, "req-1"

    def line(path: str, **extra: Any) -> dict[str, Any]:
        return {"message": "request_completed", "path": path, "trace_id": trace,
                "request_id": request, "status_code": 200, **extra}  # fmt: skip

    front: list[dict[str, Any]] = [line("/api/downstream"), {"message": "other", "trace_id": trace}]
    back = [line("/api/ping")]
    assert logs.trace_problems(front, back, trace, request) == []
    assert logs.trace_problems(front, [], trace, request) == [
        f"backend: no request_completed for /api/ping with trace_id {trace}"
    ]
    wrong = logs.trace_problems(front, [line("/api/ping", request_id="x")], trace, request)
    assert wrong == ["backend: request_id 'x', sent 'req-1'"]
    failed = logs.trace_problems([line("/api/downstream", status_code=502)], back, trace, request)
    assert failed and failed[0].startswith("frontend: /api/downstream answered 502")
