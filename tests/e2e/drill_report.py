"""The drill's JSON report (`python -m tools.drill load ... --json FILE`), read by the suite.

The drill's own exit code already says pass or fail; this reads the figures back so the
suite can assert on them, print one line per drill and keep them in the e2e artefacts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DrillReport:
    title: str
    passed: bool
    problems: list[str]
    sent: int
    ok: int
    failed: int
    non_2xx: dict[str, int]
    errors: dict[str, int]  # connection errors by kind, zeros left out
    p50_ms: float | None
    p99_ms: float | None
    duration_s: float
    failures_per_second: list[tuple[int, int]] = field(default_factory=list)

    def line(self) -> str:
        p99 = "-" if self.p99_ms is None else f"{self.p99_ms:.0f} ms"
        return (
            f"{self.sent:,} requests in {self.duration_s:.0f} s, {self.ok:,} 2xx, "
            f"{self.failed:,} failed, p99 {p99}"
        )


def from_dict(data: Mapping[str, Any]) -> DrillReport:
    summary: Mapping[str, Any] = data["summary"]
    overall: Mapping[str, Any] = (summary.get("latency") or {}).get("all") or {}
    return DrillReport(
        title=str(data.get("title", "")),
        passed=bool(data["passed"]),
        problems=[str(p) for p in data.get("problems", [])],
        sent=int(summary["sent"]),
        ok=int(summary["ok"]),
        failed=int(summary["failed"]),
        non_2xx={str(k): int(v) for k, v in (summary.get("non_2xx") or {}).items()},
        errors={str(k): int(v) for k, v in (summary.get("errors") or {}).items() if v},
        p50_ms=overall.get("p50_ms"),
        p99_ms=overall.get("p99_ms"),
        duration_s=float(summary.get("duration_s", 0.0)),
        failures_per_second=[(int(s), int(n)) for s, n in summary.get("failures_per_second", [])],
    )


def load(path: Path) -> DrillReport:
    return from_dict(json.loads(path.read_text()))


def drill_problems(report: DrillReport, *, min_requests: int) -> list[str]:
    """Why this drill does not prove a rollout without a lost request; empty = it does."""
    problems = list(report.problems)
    if not report.passed and not problems:
        problems.append("the drill reported a failure")
    if report.sent < min_requests:
        problems.append(f"only {report.sent} requests sent, fewer than {min_requests}")
    if report.failed:
        detail = ", ".join(
            [f"HTTP {code}: {n}" for code, n in sorted(report.non_2xx.items())]
            + [f"{kind}: {n}" for kind, n in sorted(report.errors.items())]
        )
        seconds = ", ".join(f"t={s}s: {n}" for s, n in report.failures_per_second[:10])
        problems.append(
            f"{report.failed} of {report.sent} requests failed ({detail}; at {seconds})"
        )
    return list(dict.fromkeys(problems))  # the drill's own line may repeat ours
