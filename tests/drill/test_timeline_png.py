"""The drill's timeline picture: its series from per-request results (pure), the replica
rows, the PNG drawn from a report, and what happens without matplotlib."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import missing
from tools.drill import cli, timeline_png
from tools.drill.errors import ErrorKind
from tools.drill.results import Event, RequestResult, summarize
from tools.drill.timeline_png import NO_VERSION, replica_rows, series, write_beside


def ok(i: int, t: float, version: str = "", kind: str = "fast", ms: float = 5) -> RequestResult:
    return RequestResult(i, kind, t, ms / 1000, status=200, version=version)


def test_series_counts_per_bucket_by_version_and_outcome() -> None:
    results = [
        ok(0, 0.01, "old"), ok(1, 0.05, "old"), ok(2, 0.12, "new"), ok(3, 0.95, "new"),
        RequestResult(4, "fast", 0.15, 0.001, status=503),
        RequestResult(5, "items", 0.16, 0.2, error=ErrorKind.REFUSED, detail="econnrefused"),
        RequestResult(6, "items", 0.31, 0.2, error=ErrorKind.REFUSED, detail="econnrefused"),
    ]  # fmt: skip
    data = series(results)
    assert data["bucket_s"] == 0.1 and data["buckets"] == 10 and data["by_version"] is True
    assert data["answered_2xx"] == {
        "new": [0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        "old": [2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    }
    assert list(data["failed"]) == ["refused", "503"]  # most failures first
    assert data["failed"]["refused"] == [0, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    assert data["failed"]["503"][1] == 1
    json.dumps(data)  # stored in the JSON report as it is


def test_without_versions_answers_are_one_series_and_a_missing_header_is_named() -> None:
    assert list(series([ok(0, 0.0), ok(1, 0.3)])["answered_2xx"]) == ["2xx"]
    mixed = series([ok(0, 0.0, "new"), ok(1, 0.3)])
    assert set(mixed["answered_2xx"]) == {"new", NO_VERSION}
    assert series([])["buckets"] == 1  # an empty run still has an axis


def test_p99_per_second_leaves_out_the_long_tasks() -> None:
    fast = [ok(i, i / 100, ms=10 + i % 3) for i in range(100)]
    slow = [ok(100 + i, 0.5 + i, kind="long", ms=3000) for i in range(2)]
    data = series([*fast, *slow, ok(200, 2.5, ms=40)])
    assert data["p99_ms"] == [12.0, None, 40.0]  # no answered fast request in second 1
    assert data["p99_kinds"] == ["fast"]


def events(*spec: tuple[float, str, str]) -> list[dict[str, Any]]:
    return [{"t_s": t, "name": n, "subject": s, "detail": {}} for t, n, s in spec]


def test_replica_rows_put_the_initial_replicas_first_then_by_start() -> None:
    rows = replica_rows(
        events(
            (1.0, "replica_starting", "r5"), (0.5, "replica_starting", "r4"),
            (3.0, "deleted", "r2"), (2.0, "deleted", "r1"), (3.5, "sigterm", "r1"),
            (4.0, "action_finished", ""), (4.1, "rollout_started", "command"),
        )
    )  # fmt: skip
    assert list(rows) == ["r1", "r2", "r4", "r5"]
    assert [e["name"] for e in rows["r1"]] == ["deleted", "sigterm"]


def need_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        missing("matplotlib (make bench-deps)")


def report(tmp_path: Path, *, failures: bool) -> tuple[Path, dict[str, Any]]:
    """A control-like run: two replicas replaced, 503s around one SIGTERM when failing."""
    results = [ok(i, i / 50, "old" if i < 400 else "new") for i in range(800)]
    if failures:
        results += [
            RequestResult(900 + i, "fast", 6 + i / 50, 0.001, status=503) for i in range(20)
        ]
    timeline = [
        Event(2.0, "replica_starting", "r3"), Event(4.0, "replica_ready", "r3"),
        Event(4.2, "in_rotation", "r3"), Event(5.0, "deleted", "r1", {"lag_s": 1.0}),
        Event(6.0, "rotation_out", "r1"), Event(6.0, "sigterm", "r1"),
        Event(9.0, "exited", "r1", {"code": 0}),
    ]  # fmt: skip
    summary = summarize(results, duration_s=16, target_rate=50, events=timeline)
    path = tmp_path / "drill.json"
    code = cli.report(
        "a test drill", summary, [], json_path=path, extra={"timeline": series(results)}
    )
    assert code == cli.EXIT_PASS
    return path, json.loads(path.read_text())


def test_the_report_carries_the_series_and_the_picture_is_drawn_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_matplotlib()
    from matplotlib import image

    path, data = report(tmp_path, failures=True)
    assert data["timeline"]["failed"]["503"][60] == 5
    png = path.with_suffix(".png")
    assert f"timeline picture: {png}" in capsys.readouterr().out
    height, width, _ = image.imread(png).shape
    assert (width, height) == (1300, 950)
    again = tmp_path / "again.png"
    assert timeline_png.main([str(path), "-o", str(again)]) == 0
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_failures_is_drawn_too(tmp_path: Path) -> None:
    need_matplotlib()
    path, data = report(tmp_path, failures=False)
    assert data["timeline"]["failed"] == {}
    assert path.with_suffix(".png").stat().st_size > 10_000


def test_without_matplotlib_the_picture_is_skipped_with_one_line_except_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(timeline_png, "matplotlib_available", lambda: False)
    data = {"title": "t", "summary": {}, "timeline": series([ok(0, 0.0)])}
    monkeypatch.delenv("CI", raising=False)
    assert write_beside(tmp_path / "r.json", data) is None
    assert "matplotlib is not installed (`make bench-deps`" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="CI=true: timeline picture skipped"):
        write_beside(tmp_path / "r.json", data)
    with pytest.raises(ValueError, match="no 'timeline'"):
        write_beside(tmp_path / "r.json", {"title": "t"})


def test_the_canary_drills_picture_shows_each_steps_weight_and_checks(tmp_path: Path) -> None:
    """With analysis steps (make drill-canary) the bottom panel is the canary's weight per
    step with each check's value against its threshold, instead of replica rows."""
    need_matplotlib()
    check = {"metric": "success-rate", "value": 86.27, "min": 99, "max": None, "passed": False}
    latency = {"metric": "latency-p99", "value": None, "min": None, "max": 500, "passed": False}
    assert timeline_png._check_text(check) == "success-rate 86.3 (>= 99) FAIL"
    assert timeline_png._check_text(latency) == "latency-p99 no data (<= 500) FAIL"
    _, data = report(tmp_path, failures=False)
    steps = [
        {"t_s": 4.0, "weight": 10, "passed": True, "checks": [{**check, "passed": True}]},
        {"t_s": 8.0, "weight": 20, "passed": False, "checks": [check, latency]},
    ]
    picture = timeline_png.render({**data, "analysis_steps": steps}, tmp_path / "canary.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 10_000
