"""What a drill measured: per-request results, the events around them, and their summary.

Pure functions only (no I/O), so the analysis is unit-tested and reusable by the kind e2e
suite, which records its own events (EndpointSlice changes, SIGTERM times) on the timeline.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.drill.errors import ErrorKind

Detail = str | int | float | bool | None


@dataclass(frozen=True)
class RequestResult:
    index: int
    kind: str  # name of the mix entry: "fast", "items", "long", ...
    due_s: float  # when it was due, seconds after the load started
    latency_s: float  # from due time (not send time: no coordinated omission) to the end
    status: int | None = None  # None when no response arrived
    error: ErrorKind | None = None
    detail: str = ""  # error detail, e.g. "closed_before_response"
    server: str = ""  # who answered, when the proxy says so (X-Drill-Server)
    reused: bool = False  # sent on a kept-alive connection
    version: str = ""  # which build answered (the service's X-App-Version header)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Event:
    t_s: float  # seconds after the timeline's origin (the load's start)
    name: str  # snake_case: "replica_ready", "rotation_out", "sigterm", "exited", ...
    subject: str = ""  # what it happened to: a replica, a pod, the rollout command
    detail: dict[str, Detail] = field(default_factory=dict)


class Timeline:
    """Monotonic clock shared by the load and whatever runs beside it, plus its event log."""

    def __init__(self) -> None:
        self.origin = time.monotonic()
        self.origin_wall = time.time()
        self.events: list[Event] = []

    def now(self) -> float:
        return time.monotonic() - self.origin

    def restart(self) -> None:
        """Move the origin to now (when the load starts); earlier events keep negative times."""
        shift = time.monotonic() - self.origin
        self.origin += shift
        self.origin_wall = time.time()
        self.events = [Event(e.t_s - shift, e.name, e.subject, e.detail) for e in self.events]

    def record(self, name: str, subject: str = "", **detail: Detail) -> Event:
        return self.record_at(self.now(), name, subject, **detail)

    def record_at(self, t_s: float, name: str, subject: str = "", **detail: Detail) -> Event:
        """Record something observed elsewhere (a log line, an API watch) at time t_s."""
        event = Event(round(t_s, 3), name, subject, dict(detail))
        self.events.append(event)
        self.events.sort(key=lambda e: e.t_s)
        return event

    def from_wall(self, wall_s: float) -> float:
        """A wall-clock time (Unix seconds, e.g. a log line's timestamp) on this timeline."""
        return wall_s - self.origin_wall

    def find(self, name: str, subject: str = "") -> Event | None:
        for event in self.events:
            if event.name == name and (not subject or event.subject == subject):
                return event
        return None


def removal_margins(
    events: Sequence[Event], removed: str = "rotation_out", signalled: str = "sigterm"
) -> dict[str, float]:
    """Per subject: seconds from leaving the load balancer's rotation to SIGTERM.

    Positive: it stopped receiving new requests before it was told to stop (what preStop
    is for); negative: SIGTERM came first and any request sent in between could fail. The
    kind e2e suite passes its own names ("endpoint_removed" from EndpointSlices).
    """
    first: dict[tuple[str, str], float] = {}
    for e in events:
        first.setdefault((e.name, e.subject), e.t_s)
    return {
        subject: round(first[(signalled, subject)] - t, 3)
        for (name, subject), t in first.items()
        if name == removed and (signalled, subject) in first
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when there are none."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile out of range: {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LatencyStats:
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @staticmethod
    def of(latencies_s: Sequence[float]) -> LatencyStats:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 1)

        return LatencyStats(
            count=len(latencies_s),
            p50_ms=ms(percentile(latencies_s, 50)),
            p99_ms=ms(percentile(latencies_s, 99)),
            max_ms=ms(max(latencies_s) if latencies_s else None),
        )


@dataclass
class Summary:
    duration_s: float
    target_rate: float
    sent: int
    answered: int  # got an HTTP response, any status
    ok: int  # 2xx
    failed: int  # non-2xx + connection errors
    non_2xx: dict[str, int]  # status code -> count
    errors: dict[str, int]  # every ErrorKind -> count (zeros included)
    error_details: dict[str, int]  # "kind/detail" (+ " (reused conn)": a keep-alive one)
    latency: dict[str, LatencyStats]  # per mix entry, plus "all" (answered requests)
    failures_per_second: list[tuple[int, int]]  # (second after start, failures), non-zero only
    by_server: dict[str, int]
    max_send_lag_ms: float  # how late the client sent its worst request (client saturation)
    events: list[Event]
    started_at: float  # wall clock (Unix seconds) of t=0, to line events up with logs
    # Answered requests per X-App-Version ("" = no header), overall and per time slice
    # ([slice start s, {version: count}]), so the traffic's move to the new version shows.
    by_version: dict[str, int] = field(default_factory=dict)
    by_version_over_time: list[tuple[int, dict[str, int]]] = field(default_factory=list)


def summarize(
    results: Iterable[RequestResult],
    *,
    duration_s: float,
    target_rate: float,
    events: Sequence[Event] = (),
    send_lags_s: Sequence[float] = (),
    started_at: float = 0.0,
) -> Summary:
    results = list(results)
    answered = [r for r in results if r.status is not None]
    failures = [r for r in results if not r.ok]
    non_2xx = Counter(str(r.status) for r in answered if not r.ok)
    errors = Counter(r.error.value for r in results if r.error is not None)
    details = Counter(
        f"{r.error.value}/{r.detail}{' (reused conn)' if r.reused else ''}"
        for r in results
        if r.error is not None
    )
    per_second = Counter(int(r.due_s) for r in failures)
    kinds = sorted({r.kind for r in results})
    latency = {k: LatencyStats.of([r.latency_s for r in answered if r.kind == k]) for k in kinds}
    latency["all"] = LatencyStats.of([r.latency_s for r in answered])
    return Summary(
        duration_s=round(duration_s, 2),
        target_rate=target_rate,
        sent=len(results),
        answered=len(answered),
        ok=sum(1 for r in results if r.ok),
        failed=len(failures),
        non_2xx=dict(sorted(non_2xx.items())),
        errors={kind.value: errors.get(kind.value, 0) for kind in ErrorKind},
        error_details=dict(sorted(details.items())),
        latency=latency,
        failures_per_second=sorted(per_second.items()),
        by_server=dict(sorted(Counter(r.server for r in answered if r.server).items())),
        max_send_lag_ms=round(max(send_lags_s, default=0.0) * 1000, 1),
        events=list(events),
        started_at=started_at,
        by_version=dict(sorted(Counter(r.version for r in answered).items())),
        by_version_over_time=versions_over_time(answered, duration_s),
    )


def versions_over_time(
    answered: Sequence[RequestResult], duration_s: float, slices: int = 10
) -> list[tuple[int, dict[str, int]]]:
    """Answered requests per version in about `slices` equal slices of the run (whole
    seconds each); versions that never answered are left out, so does a run without them."""
    if not any(r.version for r in answered):
        return []
    width = max(1, math.ceil(duration_s / slices))
    buckets: dict[int, Counter[str]] = {}
    for r in answered:
        start = int(r.due_s // width) * width
        buckets.setdefault(start, Counter())[r.version] += 1
    return [(start, dict(sorted(counts.items()))) for start, counts in sorted(buckets.items())]


def verdict(summary: Summary, *, expect_failures: bool = False, min_requests: int = 0) -> list[str]:
    """Problems that make the drill fail; an empty list is a pass."""
    problems: list[str] = []
    if summary.sent < min_requests:
        problems.append(f"only {summary.sent:,} requests sent, fewer than {min_requests:,}")
    if expect_failures and summary.failed == 0:
        problems.append("control run: no request failed, so this drill could not detect a failure")
    if not expect_failures and summary.failed:
        problems.append(f"{summary.failed:,} of {summary.sent:,} requests failed")
    return problems


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(summary: Summary, *, show_events: bool = True) -> list[str]:
    """Human-readable lines (the drill's stdout)."""
    achieved = summary.sent / summary.duration_s if summary.duration_s else 0.0
    errors = ", ".join(f"{k} {v}" for k, v in summary.errors.items())
    non_2xx = ", ".join(f"{k}: {v}" for k, v in summary.non_2xx.items()) or "none"
    lines = [
        f"requests sent    {summary.sent:,} in {summary.duration_s:.1f} s "
        f"(target {summary.target_rate:g}/s, achieved {achieved:.1f}/s)",
        f"2xx              {summary.ok:,}",
        f"non-2xx          {non_2xx}",
        f"conn. errors     {errors}",
        f"failed           {summary.failed:,}",
    ]
    if summary.error_details:
        lines.append(
            "error details    " + ", ".join(f"{k} {v}" for k, v in summary.error_details.items())
        )
    lines.append("latency (ms)     kind            count      p50      p99      max")
    for kind, stats in summary.latency.items():
        lines.append(
            f"                 {kind:<12} {stats.count:>8,} {_fmt_ms(stats.p50_ms):>8} "
            f"{_fmt_ms(stats.p99_ms):>8} {_fmt_ms(stats.max_ms):>8}"
        )
    if summary.by_version:
        lines.append(
            "answered by ver. "
            + ", ".join(f"{k or '(none)'} {v:,}" for k, v in summary.by_version.items())
        )
    for start, counts in summary.by_version_over_time:
        lines.append(
            f"  t={start:>4}s       "
            + ", ".join(f"{k or '(none)'} {v:,}" for k, v in counts.items())
        )
    if summary.by_server:
        lines.append(
            "answered by      " + ", ".join(f"{k} {v:,}" for k, v in summary.by_server.items())
        )
    lines.append(f"client send lag  max {summary.max_send_lag_ms:.1f} ms")
    if show_events and summary.events:
        shown_events = summary.events[:40]
        lines.append(
            "events           "
            + ", ".join(
                f"{e.name}{' ' + e.subject if e.subject else ''} t={e.t_s:.1f}s"
                + "".join(f" {k}={v}" for k, v in e.detail.items() if k != "command")
                for e in shown_events
            )
        )
    if summary.failures_per_second:
        shown = summary.failures_per_second[:20]
        more = len(summary.failures_per_second) - len(shown)
        lines.append(
            "failures at      "
            + ", ".join(f"t={s}s: {n}" for s, n in shown)
            + (f" (+{more} more seconds)" if more else "")
        )
    return lines


def to_dict(summary: Summary) -> dict[str, Any]:
    return asdict(summary)
