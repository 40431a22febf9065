"""Reading the app's JSON logs as the e2e suite gets them from the Kubernetes API.

Pure functions: parse lines, find a trace, check the shutdown events of every worker of a
pod came in order, and find a SIGKILL or a cut drain. A pod runs several Gunicorn workers
(WEB_CONCURRENCY) and each logs its own shutdown, so their lines interleave.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tools.testbed.jsonlines import parse_json_line

# What every worker logs between SIGTERM and its exit (docs/architecture.md, shutdown timeline).
SHUTDOWN_EVENTS = (
    "shutdown_started",
    "waiting_for_in_flight_requests",
    "rejecting_new_requests",
    "requests_drained",
    "database_closed",
    "redis_closed",
    "shutdown_complete",
)
# Lines that mean a drain did not end cleanly.
CUT_EVENTS = frozenset({"grace_period_exceeded", "database_close_failed", "redis_close_failed"})

Record = dict[str, Any]


@dataclass
class ParsedLog:
    records: list[Record] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)

    def messages(self) -> list[str]:
        return [str(r.get("message", "")) for r in self.records]


def parse_lines(lines: Iterable[str]) -> ParsedLog:
    """Every non-empty line must be one JSON object; the others are kept as bad lines."""
    parsed = ParsedLog()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        record = parse_json_line(line)
        if record is None:
            parsed.bad_lines.append((number, line))
        else:
            parsed.records.append(record)
    return parsed


def parse_log(text: str) -> ParsedLog:
    return parse_lines(text.split("\n"))  # JSON Lines end at "\n" only


def parse_timestamp(value: str) -> datetime:
    """RFC 3339 as the app writes it (`2026-01-02T03:04:05.678Z`), timezone-aware."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def with_trace(records: Iterable[Record], trace_id: str) -> list[Record]:
    return [r for r in records if r.get("trace_id") == trace_id]


def interleaving_problems(messages: Sequence[str], events: Sequence[str]) -> list[str]:
    """Problems unless the `events` lines are N complete copies of `events` interleaved.

    N is the number of first events (one per worker). Copies are identical, so the
    sequence is valid exactly when every event occurs N times and, in every prefix, no
    event has been seen more often than the one before it.
    """
    wanted = set(events)
    seen = [m for m in messages if m in wanted]
    workers = seen.count(events[0])
    if workers == 0:
        return [f"no {events[0]} line"]
    problems: list[str] = []
    counts: Counter[str] = Counter()
    for position, message in enumerate(seen):
        counts[message] += 1
        index = events.index(message)
        if index and counts[message] > counts[events[index - 1]]:
            problems.append(
                f"{message} (#{counts[message]}) came before its {events[index - 1]} "
                f"(event {position + 1} of {len(seen)}: {', '.join(seen)})"
            )
            break
    for event in events:
        if counts[event] != workers:
            problems.append(f"{event}: {counts[event]} lines for {workers} worker(s)")
    return problems


def sigterm_at(records: Iterable[Record]) -> datetime | None:
    """When the pod got SIGTERM: the first shutdown_started line with signal SIGTERM."""
    for r in records:
        if r.get("message") == "shutdown_started" and r.get("signal") == "SIGTERM":
            return parse_timestamp(str(r["timestamp"]))
    return None


def last_timestamp(records: Sequence[Record]) -> datetime | None:
    for r in reversed(records):
        if "timestamp" in r:
            return parse_timestamp(str(r["timestamp"]))
    return None


def _mentions_sigkill(record: Record) -> bool:
    text = " ".join(str(record.get(k, "")) for k in ("message", "detail", "error"))
    return "sigkill" in text.lower()


def shutdown_problems(
    records: Sequence[Record], events: Sequence[str] = SHUTDOWN_EVENTS
) -> list[str]:
    """Everything wrong with one pod's shutdown, as read from its whole log."""
    problems = interleaving_problems([str(r.get("message", "")) for r in records], events)
    signals = {r.get("signal") for r in records if r.get("message") == "shutdown_started"}
    if signals - {"SIGTERM"}:
        problems.append(f"shutdown started by {sorted(map(str, signals))}, expected SIGTERM only")
    for r in records:
        if r.get("message") in CUT_EVENTS:
            problems.append(f"{r.get('message')}: {json.dumps(r, sort_keys=True)[:300]}")
        elif _mentions_sigkill(r):
            problems.append(f"SIGKILL: {json.dumps(r, sort_keys=True)[:300]}")
    return problems


def describe_bad_lines(pod: str, parsed: ParsedLog, limit: int = 3) -> list[str]:
    return [f"{pod} line {n}: {text[:200]!r}" for n, text in parsed.bad_lines[:limit]]


def trace_problems(
    frontend: Iterable[Record], backend: Iterable[Record], trace_id: str, request_id: str
) -> list[str]:
    """One request through two releases: the frontend's access line for /api/downstream and
    the backend's for the call it made (/api/ping) both carry the trace id sent, and the
    backend's carries the request id the frontend passed on (X-Request-ID)."""
    problems = []
    hops = {
        "frontend": (list(frontend), "/api/downstream"),
        "backend": (list(backend), "/api/ping"),
    }
    for side, (records, path) in hops.items():
        lines = [
            r for r in with_trace(records, trace_id)
            if r.get("message") == "request_completed" and r.get("path") == path
        ]  # fmt: skip
        if not lines:
            problems.append(f"{side}: no request_completed for {path} with trace_id {trace_id}")
        elif lines[0].get("status_code") != 200:
            problems.append(f"{side}: {path} answered {lines[0].get('status_code')}: {lines[0]}")
        elif lines[0].get("request_id") != request_id:
            problems.append(
                f"{side}: request_id {lines[0].get('request_id')!r}, sent {request_id!r}"
            )
    return problems
