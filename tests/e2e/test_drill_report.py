"""Reading the drill's JSON report back: the figures and why a drill does not pass."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e import drill_report
from tools.drill.cli import report
from tools.drill.errors import ErrorKind
from tools.drill.results import RequestResult, summarize


def write_report(path: Path, results: list[RequestResult], problems: list[str]) -> None:
    """The report exactly as `python -m tools.drill load --json` writes it."""
    summary = summarize(results, duration_s=len(results) / 10, target_rate=10)
    report("load http://127.0.0.1:30080 at 10/s", summary, problems, json_path=path)


def test_a_clean_drill(tmp_path: Path) -> None:
    path = tmp_path / "drill.json"
    write_report(path, [RequestResult(i, "fast", i / 10, 0.02, status=200) for i in range(50)], [])
    r = drill_report.load(path)
    assert (r.passed, r.sent, r.ok, r.failed, r.errors, r.non_2xx) == (True, 50, 50, 0, {}, {})
    assert r.p99_ms == 20.0 and r.duration_s == 5.0
    assert drill_report.drill_problems(r, min_requests=50) == []
    assert r.line() == "50 requests in 5 s, 50 2xx, 0 failed, p99 20 ms"


def test_failures_too_few_requests_and_rollout_problems(tmp_path: Path) -> None:
    path = tmp_path / "drill.json"
    results = [RequestResult(i, "fast", i / 10, 0.01, status=200) for i in range(20)]
    results += [
        RequestResult(20, "fast", 2.5, 0.01, status=503),
        RequestResult(21, "items", 3.1, 0.5, error=ErrorKind.REFUSED, detail="econnrefused"),
    ]
    write_report(path, results, ["rollout command exited with code 1"])
    r = drill_report.load(path)
    assert not r.passed and r.failed == 2
    assert r.errors == {"refused": 1} and r.non_2xx == {"503": 1}
    problems = drill_report.drill_problems(r, min_requests=100)
    assert problems[0] == "rollout command exited with code 1"
    assert "only 22 requests sent, fewer than 100" in problems
    assert "2 of 22 requests failed (HTTP 503: 1, refused: 1; at t=2s: 1, t=3s: 1)" in problems


def test_a_failed_report_without_problems_still_fails() -> None:
    data = {"passed": False, "summary": {"sent": 0, "ok": 0, "failed": 0}}
    r = drill_report.from_dict(data)
    assert drill_report.drill_problems(r, min_requests=0) == ["the drill reported a failure"]
    assert r.p99_ms is None and "p99 -" in r.line()
    assert json.dumps(data)  # plain data in, plain data out
