"""A rollout you can see: the timeline picture written beside a drill's JSON report.

One time axis, four panels: answered requests per second (2xx; by X-App-Version when the
responses carried it), failed requests per 100 ms bucket by outcome (status code or
connection error), p99 latency per second (all but the long tasks, which last seconds on
purpose), and each replica's life: started, ready, in rotation, out of rotation, SIGTERM,
exited (with its exit code), SIGKILL. SIGTERMs are also drawn as thin lines across the
panels above, so a burst of failures lines up with the replica that caused it.

The series are computed from the per-request results (`series`, pure) and stored in the
JSON report under "timeline", so the picture can be drawn again from the report alone:
`python -m tools.drill.timeline_png drill.json [-o drill.png]`. Any drill calls
`write_beside(json_path, report)` after writing its report (the report holds "title",
"passed", "summary" with its events, and "timeline" from `series`).

matplotlib is a bench dependency (`make bench-deps`; the drill targets install it). Without
it the picture is skipped with one line, unless CI=true, where that is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.drill.results import RequestResult, percentile

BUCKET_S = 0.1  # failures and requests per 100 ms
P99_WINDOW_S = 1.0  # p99 per second: 100 ms holds too few requests for a 99th percentile
SLOW_ON_PURPOSE = frozenset({"long"})  # mix entries left out of the p99 line
# Replica events drawn as markers (name -> label, marker, color), in lifecycle order.
REPLICA_MARKERS: dict[str, tuple[str, str, str]] = {
    "replica_starting": ("started", "o", "#7f7f7f"),
    "replica_ready": ("ready", "^", "#2ca02c"),
    "in_rotation": ("in rotation", ">", "#1f77b4"),
    "deleted": ("deleted", "D", "#9467bd"),
    "rotation_out": ("out of rotation", "v", "#ff7f0e"),
    "sigterm": ("SIGTERM", "X", "#d62728"),
    "sigkill": ("SIGKILL", "*", "#000000"),
    "exited": ("exited (code)", "s", "#8c564b"),
}
NO_VERSION = "(no version header)"
MISSING_MESSAGE = (
    "timeline picture skipped: matplotlib is not installed (`make bench-deps` installs it; "
    "the drill targets do so themselves)"
)


def outcome(r: RequestResult) -> str:
    """What a failed request got: its status code, else its connection error."""
    if r.status is not None:
        return str(r.status)
    return r.error.value if r.error is not None else "unknown"


def series(
    results: Iterable[RequestResult],
    *,
    bucket_s: float = BUCKET_S,
    p99_window_s: float = P99_WINDOW_S,
) -> dict[str, Any]:
    """The picture's data, JSON-ready: counts per bucket of due time (when the request was
    sent; a failure shows where it was sent), from t=0 to the last request."""
    results = list(results)
    end = max((r.due_s for r in results), default=0.0)
    n = int(end // bucket_s) + 1
    ok_by_version: dict[str, list[int]] = {}
    failed: dict[str, list[int]] = {}
    versions = any(getattr(r, "version", "") for r in results)
    for r in results:
        i = min(n - 1, max(0, int(r.due_s // bucket_s)))
        if r.ok:
            key = (getattr(r, "version", "") or NO_VERSION) if versions else "2xx"
            ok_by_version.setdefault(key, [0] * n)[i] += 1
        else:
            failed.setdefault(outcome(r), [0] * n)[i] += 1
    windows: dict[int, list[float]] = {}
    for r in results:
        if r.status is not None and r.kind not in SLOW_ON_PURPOSE:
            windows.setdefault(int(r.due_s // p99_window_s), []).append(r.latency_s)
    w = int(end // p99_window_s) + 1
    p99 = [percentile(windows.get(i, []), 99) for i in range(w)]
    kinds = sorted({r.kind for r in results} - SLOW_ON_PURPOSE)
    return {
        "bucket_s": bucket_s,
        "buckets": n,
        "answered_2xx": dict(sorted(ok_by_version.items())),
        "by_version": versions,
        "failed": dict(sorted(failed.items(), key=lambda kv: -sum(kv[1]))),
        "p99_window_s": p99_window_s,
        "p99_ms": [None if v is None else round(v * 1000, 2) for v in p99],
        "p99_kinds": kinds,
    }


def replica_rows(events: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Replica events by subject, subjects in the order they first appear (the initial
    replicas first: their first event is their deletion, later than the new ones' start,
    so they are ordered by name among those without a start)."""
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        if e.get("name") in REPLICA_MARKERS and e.get("subject"):
            rows.setdefault(str(e["subject"]), []).append(e)
    started = {s for s, evs in rows.items() if any(e["name"] == "replica_starting" for e in evs)}
    first = sorted(s for s in rows if s not in started)
    later = sorted(started, key=lambda s: min(float(e["t_s"]) for e in rows[s]))
    return {s: sorted(rows[s], key=lambda e: float(e["t_s"])) for s in first + later}


def _colors(names: Sequence[str], palette: Sequence[str]) -> dict[str, str]:
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def render(report: Mapping[str, Any], path: Path) -> Path:
    """Draw the picture of `report` (a drill's JSON report with "timeline") into `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    data = report["timeline"]
    summary = report.get("summary") or {}
    events = list(summary.get("events") or [])
    bucket = float(data["bucket_s"])
    n = int(data["buckets"])
    x = [i * bucket for i in range(n)]
    end = n * bucket
    rows = replica_rows(events)

    fig, axes = plt.subplots(
        4, 1, sharex=True, figsize=(13, 9.5),
        gridspec_kw={"height_ratios": [3, 2, 2, max(2.0, 0.45 * len(rows) + 0.8)]},
    )  # fmt: skip
    ax_rate, ax_fail, ax_p99, ax_rep = axes

    # 1. Answered requests per second, stacked by version.
    answered: dict[str, list[int]] = data["answered_2xx"]
    per_s = 1 / bucket
    # Versions in the order they first answered (the old one at the bottom of the stack).
    versions = sorted(answered, key=lambda k: next((i for i, v in enumerate(answered[k]) if v), n))
    version_colors = _colors(versions, ["#6baed6", "#756bb1", "#17becf", "#bcbd22", "#e377c2"])
    if answered:
        ax_rate.stackplot(
            x,
            *[[v * per_s for v in answered[k]] for k in versions],
            labels=[f"version {k}" if data.get("by_version") else k for k in versions],
            colors=[version_colors[k] for k in versions],
            step="post",
            alpha=0.85,
        )
    ax_rate.set_ylabel("2xx per second\n(100 ms buckets)")
    ax_rate.legend(loc="lower left", fontsize=8, ncol=4, framealpha=0.9)
    target = summary.get("target_rate")
    if target:
        ax_rate.axhline(float(target), color="#444444", lw=0.8, ls=":")
        ax_rate.text(0.2, float(target) * 1.02, f"target {float(target):g}/s", fontsize=8)
        ax_rate.set_ylim(0, float(target) * 1.6)

    # 2. Failures per 100 ms bucket, stacked by outcome.
    failed: dict[str, list[int]] = data["failed"]
    total_failed = sum(sum(v) for v in failed.values())
    if failed:
        bottom = [0] * n
        fail_colors = _colors(list(failed), ["#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#000"])
        for name, counts in failed.items():
            ax_fail.bar(
                x, counts, width=bucket, bottom=bottom, align="edge", color=fail_colors[name],
                label=f"{name}: {sum(counts):,}",
            )  # fmt: skip
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax_fail.legend(loc="upper left", fontsize=8, ncol=4, framealpha=0.9)
    else:
        ax_fail.text(
            0.5, 0.5, "no failed request", transform=ax_fail.transAxes, ha="center",
            va="center", fontsize=13, color="#2ca02c", weight="bold",
        )  # fmt: skip
        ax_fail.set_ylim(0, 1)
    ax_fail.set_ylabel("failed per 100 ms")

    # 3. p99 latency per second.
    window = float(data["p99_window_s"])
    p99 = data["p99_ms"]
    px = [(i + 0.5) * window for i, v in enumerate(p99) if v is not None]
    py = [v for v in p99 if v is not None]
    ax_p99.plot(px, py, color="#444444", lw=1.2, marker=".", ms=3)
    if py and max(py) / max(min(py), 0.01) > 20:
        ax_p99.set_yscale("log")
        ax_p99.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax_p99.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_p99.yaxis.set_minor_formatter(NullFormatter())
    ax_p99.set_ylabel(f"p99 ms per {window:g} s\n({', '.join(data['p99_kinds'])})", fontsize=8)

    # 4. Replicas (the rolling-update drills) or the analysis' steps (the canary drill).
    steps = list(report.get("analysis_steps") or [])
    if steps:
        _analysis_panel(ax_rep, steps)
    else:
        _replica_panel(ax_rep, rows, end)
    ax_rep.set_xlabel("seconds since the load started")

    for e in events:
        if e.get("name") == "sigterm":
            for ax in (ax_rate, ax_fail, ax_p99):
                ax.axvline(float(e["t_s"]), color="#d62728", lw=0.7, ls="--", alpha=0.6)
    for ax in axes:
        ax.grid(axis="x", color="#dddddd", lw=0.6)
        ax.set_xlim(0, end)

    passed = report.get("passed")
    verdict = "PASS" if passed else "FAIL"
    sent = int(summary.get("sent") or 0)
    title = str(report.get("title") or "drill")
    fig.suptitle(
        f"{_wrap(title, 120)}\n{verdict}: {total_failed:,} failed of {sent:,} requests",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _replica_panel(ax_rep: Any, rows: dict[str, list[Mapping[str, Any]]], end: float) -> None:
    """One row per replica: its life as a line, its events as markers."""
    from matplotlib.lines import Line2D

    seen: dict[str, Any] = {}
    for y, evs in enumerate(rows.values()):
        times = {str(e["name"]): float(e["t_s"]) for e in reversed(evs)}  # first of each
        start = times.get("replica_starting", 0.0)
        ready = times.get("in_rotation", times.get("replica_ready", start))
        stop = times.get("exited", end)
        out = times.get("rotation_out", stop)
        term = times.get("sigterm", end)
        segments = [
            (start, ready, "#bbbbbb", 2),  # starting
            (ready, min(out, term), "#2ca02c", 5),  # in rotation
            (term, out, "#d62728", 5),  # still in rotation after SIGTERM (or exit)
            (out, stop, "#ff7f0e", 2),  # out of rotation, stopping
        ]
        for a, b, color, width in segments:
            if b > a:
                ax_rep.plot([a, b], [y, y], color=color, lw=width, solid_capstyle="butt")
        for e in evs:
            label, marker, color = REPLICA_MARKERS[str(e["name"])]
            t = float(e["t_s"])
            handle = ax_rep.scatter([t], [y], marker=marker, color=color, s=55, zorder=3)
            seen.setdefault(label, handle)
            if e["name"] == "exited":
                code = (e.get("detail") or {}).get("code")
                ax_rep.annotate(
                    f"exit {code}", (t, y), xytext=(5, 5), textcoords="offset points",
                    fontsize=8, color="#d62728" if code not in (0, None) else "#333333",
                )  # fmt: skip
    ax_rep.set_yticks(range(len(rows)), list(rows))
    ax_rep.set_ylim(len(rows) - 0.4, -0.6)
    ax_rep.set_ylabel("replicas")
    lines = {
        "in rotation": Line2D([0], [0], color="#2ca02c", lw=5),
        "in rotation after SIGTERM": Line2D([0], [0], color="#d62728", lw=5),
        "out of rotation, stopping": Line2D([0], [0], color="#ff7f0e", lw=2),
    }
    order = [v[0] for v in REPLICA_MARKERS.values()]
    shown = [k for k in order if k in seen]
    ax_rep.legend(
        handles=[*(seen[k] for k in shown), *lines.values()],
        labels=[*shown, *lines],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35),
        ncol=6,
        fontsize=8,
        frameon=False,
    )


def _analysis_panel(ax: Any, steps: Sequence[Mapping[str, Any]]) -> None:
    """The canary's weight at each analysis step, a marker per step (green: every check
    passed, red: one failed), and each check's value against its threshold."""
    t = [float(step["t_s"]) for step in steps]
    weights = [float(step["weight"]) for step in steps]
    ax.step(t, weights, where="post", color="#756bb1", lw=1.5)
    colors = ["#2ca02c" if step.get("passed") else "#d62728" for step in steps]
    ax.scatter(t, weights, c=colors, s=40, zorder=3)
    for x, y, step in zip(t, weights, steps, strict=True):
        ax.annotate(
            "\n".join(_check_text(check) for check in step.get("checks") or []),
            (x, y), xytext=(4, 6), textcoords="offset points", fontsize=7, color="#333333",
        )  # fmt: skip
    ax.set_ylim(0, max([*weights, 10.0]) * 1.8)
    ax.set_ylabel("canary weight %\n(checks per step)", fontsize=8)


def _check_text(check: Mapping[str, Any]) -> str:
    """`success-rate 86.3 < 99 x` / `latency-p99 10.1 <= 500 ok`: a value against its limit."""
    value = check.get("value")
    shown = "no data" if value is None else f"{float(value):.1f}"
    limit = f">= {check['min']:g}" if check.get("min") is not None else f"<= {check['max']:g}"
    return f"{check['metric']} {shown} ({limit}) {'ok' if check.get('passed') else 'FAIL'}"


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def in_ci(env: Mapping[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get("CI", "").lower() in {"1", "true", "yes"}


def write_beside(json_path: Path, report: Mapping[str, Any]) -> Path | None:
    """The picture of `report` as json_path with .png; None (and one line on stderr) when
    matplotlib is missing outside CI. In CI that raises RuntimeError instead."""
    if "timeline" not in report:
        raise ValueError("the report has no 'timeline' (tools.drill.timeline_png.series)")
    if not matplotlib_available():
        if in_ci():
            raise RuntimeError(f"CI=true: {MISSING_MESSAGE}")
        print(MISSING_MESSAGE, file=sys.stderr)
        return None
    path = render(report, json_path.with_suffix(".png"))
    print(f"timeline picture: {path}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.drill.timeline_png",
        description="Draw a drill's timeline picture again from its JSON report.",
    )
    parser.add_argument("report", type=Path, help="a drill's JSON report (--json)")
    parser.add_argument("-o", "--out", type=Path, help="default: the report's name, .png")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text())
    if "timeline" not in report:
        print(f"error: {args.report} has no 'timeline' (an older report?)", file=sys.stderr)
        return 2
    if not matplotlib_available():
        print(f"error: {MISSING_MESSAGE}", file=sys.stderr)
        return 2
    print(render(report, args.out or args.report.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
