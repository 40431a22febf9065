"""Result analysis: percentiles, counting failures by kind and code, the verdict."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.drill.errors import ErrorKind
from tools.drill.results import (
    Event,
    LatencyStats,
    RequestResult,
    Timeline,
    percentile,
    removal_margins,
    render,
    summarize,
    to_dict,
    verdict,
)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([3.0, 1.0, 2.0], 50) == 2
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="out of range"):
        percentile([1.0], 101)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_is_an_element_between_min_and_max(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert min(values) <= p <= max(values)
    assert p <= percentile(values, 100)  # type: ignore[operator]


def r(
    i: int,
    *,
    status: int | None = 200,
    error: ErrorKind | None = None,
    detail: str = "",
    kind: str = "fast",
    latency_s: float = 0.01,
    server: str = "",
) -> RequestResult:
    return RequestResult(
        index=i,
        kind=kind,
        due_s=i / 10,
        latency_s=latency_s,
        status=None if error else status,
        error=error,
        detail=detail,
        server=server,
    )


def sample() -> list[RequestResult]:
    return [
        r(0, server="r1"),
        r(1, status=201, kind="items_write", server="r2"),
        r(2, status=503, server="r1"),
        r(13, status=502),
        r(14, error=ErrorKind.REFUSED, detail="econnrefused"),
        r(15, error=ErrorKind.RESET, detail="closed_before_response"),
        r(16, error=ErrorKind.TIMEOUT, detail="response", kind="long", latency_s=13),
        r(30, kind="long", latency_s=3.0),
    ]


def test_summarize_counts_every_failure_once() -> None:
    s = summarize(sample(), duration_s=4.0, target_rate=2.0)
    assert (s.sent, s.answered, s.ok, s.failed) == (8, 5, 3, 5)
    assert s.non_2xx == {"502": 1, "503": 1}
    assert s.errors == {"refused": 1, "reset": 1, "timeout": 1, "protocol": 0, "other": 0}
    assert s.error_details == {
        "refused/econnrefused": 1,
        "reset/closed_before_response": 1,
        "timeout/response": 1,
    }
    assert s.failures_per_second == [(0, 1), (1, 4)]
    assert s.by_server == {"r1": 2, "r2": 1}
    assert s.latency["long"] == LatencyStats(count=1, p50_ms=3000.0, p99_ms=3000.0, max_ms=3000.0)
    assert s.latency["all"].count == 5  # answered requests only: a timeout has no latency


def test_verdict() -> None:
    failing = summarize(sample(), duration_s=4.0, target_rate=2.0)
    clean = summarize([r(i) for i in range(10)], duration_s=1.0, target_rate=10)
    assert verdict(clean) == []
    assert verdict(failing) == ["5 of 8 requests failed"]
    assert verdict(failing, expect_failures=True) == []
    assert "could not detect" in verdict(clean, expect_failures=True)[0]
    assert verdict(clean, min_requests=5000) == ["only 10 requests sent, fewer than 5,000"]


def test_render_names_the_figures() -> None:
    text = "\n".join(render(summarize(sample(), duration_s=4.0, target_rate=2.0)))
    for expected in (
        "requests sent    8 in 4.0 s",
        "2xx              3",
        "non-2xx          502: 1, 503: 1",
        "refused 1, reset 1, timeout 1",
        "failed           5",
        "failures at      t=0s: 1, t=1s: 4",
    ):
        assert expected in text


def test_to_dict_is_plain_data() -> None:
    data = to_dict(summarize(sample(), duration_s=4.0, target_rate=2.0))
    assert data["errors"]["refused"] == 1
    assert data["latency"]["all"]["count"] == 5


def test_timeline_restart_keeps_earlier_events_before_zero() -> None:
    timeline = Timeline()
    timeline.record("replica_ready", "r1")
    time.sleep(0.02)
    timeline.restart()
    event = timeline.record("sigterm", "r1", code=0)
    assert timeline.events[0].t_s < 0 <= event.t_s
    assert timeline.find("sigterm", "r1") == event
    assert timeline.find("sigterm", "r2") is None
    assert event.detail == {"code": 0}


def test_record_at_and_from_wall_line_up_outside_observations() -> None:
    timeline = Timeline()
    timeline.record("sigterm", "r1")
    seen = timeline.record_at(
        timeline.from_wall(timeline.origin_wall - 1), "endpoint_removed", "r1"
    )
    assert seen.t_s == -1.0
    assert [e.name for e in timeline.events] == ["endpoint_removed", "sigterm"]  # in time order


def test_removal_margins() -> None:
    events = [
        Event(5.0, "deleted", "r1"),
        Event(6.0, "rotation_out", "r1"),
        Event(8.0, "sigterm", "r1"),
        Event(12.0, "sigterm", "r2"),
        Event(12.5, "rotation_out", "r2"),
        Event(13.0, "rotation_out", "r3"),  # never signalled: not compared
    ]
    assert removal_margins(events) == {"r1": 2.0, "r2": -0.5}
    pods = [Event(1.0, "endpoint_removed", "pod-a"), Event(3.5, "sigterm", "pod-a")]
    assert removal_margins(pods, removed="endpoint_removed") == {"pod-a": 2.5}


def test_render_lists_events_unless_asked_not_to() -> None:
    results = [r(0)]
    events = [Event(3.0, "rollout_finished", "command", {"code": 0})]
    s = summarize(results, duration_s=1, target_rate=1, events=events)
    assert "events           rollout_finished command t=3.0s code=0" in render(s)
    assert not any(line.startswith("events") for line in render(s, show_events=False))


def test_failures_on_kept_alive_connections_are_told_apart() -> None:
    reused = RequestResult(
        1, "fast", 0.1, 0.01, error=ErrorKind.RESET, detail="econnreset", reused=True
    )
    fresh = RequestResult(2, "fast", 0.2, 0.01, error=ErrorKind.RESET, detail="econnreset")
    s = summarize([reused, fresh], duration_s=1, target_rate=2)
    assert s.error_details == {"reset/econnreset": 1, "reset/econnreset (reused conn)": 1}
    assert s.errors["reset"] == 2


def test_answers_are_counted_per_version_and_over_time() -> None:
    results = [
        RequestResult(i, "fast", i / 10, 0.01, status=200, version="old" if i < 60 else "new")
        for i in range(100)
    ] + [RequestResult(100, "fast", 9.9, 0.01, error=ErrorKind.REFUSED, detail="x")]
    summary = summarize(results, duration_s=10, target_rate=10)
    assert summary.by_version == {"new": 40, "old": 60}
    assert summary.by_version_over_time[0] == (0, {"old": 10})
    assert summary.by_version_over_time[6] == (6, {"new": 10})
    assert sum(sum(c.values()) for _, c in summary.by_version_over_time) == 100
    text = "\n".join(render(summary))
    assert "answered by ver. new 40, old 60" in text
    assert summarize(results[:3], duration_s=1, target_rate=1).by_version_over_time[0][0] == 0
