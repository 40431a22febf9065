"""Command line of the drill: `load` against any URL, `local` with HAProxy and replicas."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools import REPO_ROOT
from tools.drill.load import DEFAULT_MIX, LoadConfig, default_kinds, parse_mix, run_drill
from tools.drill.replica import ReplicaReport
from tools.drill.results import Summary, render, to_dict, verdict
from tools.drill.rollout import command_action
from tools.drill.timeline_png import series, write_beside

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def seconds_list(text: str) -> tuple[float, ...]:
    """ "1,2,3.5" -> (1.0, 2.0, 3.5); each value >= 0."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from exc
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"need one or more seconds >= 0: {text!r}")
    return values


def _add_load_options(p: argparse.ArgumentParser, *, duration: float) -> None:
    g = p.add_argument_group("load")
    g.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    g.add_argument(
        "--duration",
        type=float,
        default=duration,
        help=f"minimum seconds of load; it also lasts until the rollout ends + settle "
        f"(default {duration:g})",
    )
    g.add_argument("--max-duration", type=float, default=600.0, help="hard bound (default 600)")
    g.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the rollout")
    g.add_argument("--settle", type=float, default=3.0, help="seconds of load after the rollout")
    g.add_argument("--mix", default=DEFAULT_MIX, help=f"weights (default {DEFAULT_MIX})")
    g.add_argument("--long-task-seconds", type=float, default=3.0, help="length of a long task")
    g.add_argument("--fast-ms", type=int, default=1, help="ms of a fast request (/api/slow)")
    g.add_argument("--seed", type=int, default=1, help="seed of the request mix")
    g.add_argument("--min-requests", type=int, default=0, help="fail if fewer were sent")
    g.add_argument(
        "--expect-failures",
        action="store_true",
        help="pass only if some request failed (a control run); implied by --control",
    )
    g.add_argument("--json", type=Path, help="also write the full result as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.drill",
        description="Rolling-update drill: constant load, a rollout beside it, every failure "
        "counted (non-2xx by code; refused, reset, timeout). Exit 0 pass, 1 fail, 2 error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load", help="load a URL, optionally while a rollout command runs")
    load.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:30080")
    load.add_argument("--rollout", default="", help="shell command run after the warm-up")
    load.add_argument("--rollout-timeout", type=float, default=600.0, help="seconds")
    _add_load_options(load, duration=60.0)

    local = sub.add_parser("local", help="N replicas behind HAProxy, each replaced in turn")
    local.add_argument("--replicas", type=int, default=3)
    local.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY per replica")
    local.add_argument(
        "--control",
        action="store_true",
        help="protections off: stock UvicornWorker, no preStop, no shutdown delay",
    )
    local.add_argument(
        "--stock-worker",
        action="store_true",
        help="only the worker class off (-k uvicorn_worker.UvicornWorker), other settings kept",
    )
    local.add_argument("--prestop-seconds", type=float, default=3.0)
    local.add_argument("--shutdown-delay-seconds", type=float, default=1.0)
    local.add_argument("--grace-seconds", type=float, default=10.0, help="GRACE_PERIOD_SECONDS")
    local.add_argument(
        "--termination-grace-seconds",
        type=float,
        default=None,
        help="SIGKILL deadline after deletion (default prestop + grace + 5)",
    )
    local.add_argument(
        "--endpoint-lag-seconds",
        type=seconds_list,
        default=(1.0, 2.0, 3.5),
        help="delay between deletion and leaving the rotation (endpoint propagation), one per "
        "replacement, cycled (default 1,2,3.5)",
    )
    local.add_argument("--proxy-mode", choices=["http", "tcp"], default="http")
    local.add_argument("--database-url", default="", help="default: SQLite file in the run dir")
    local.add_argument("--haproxy", default="haproxy", help="haproxy binary")
    local.add_argument(
        "--app-dir",
        type=Path,
        default=REPO_ROOT,
        help="folder the Gunicorn command runs from (default: the repository)",
    )
    local.add_argument("--keep-dir", action="store_true", help="keep configs and logs")
    _add_load_options(local, duration=60.0)
    return parser


def load_config(args: argparse.Namespace, url: str) -> LoadConfig:
    kinds = default_kinds(args.long_task_seconds, args.fast_ms)
    return LoadConfig(
        url=url,
        rate=args.rate,
        duration_s=args.duration,
        max_duration_s=max(args.max_duration, args.duration),
        kinds=kinds,
        mix=parse_mix(args.mix, set(kinds)),
        seed=args.seed,
    )


def render_replica(r: ReplicaReport) -> str:
    def t(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}s"

    after = "-" if r.exit_after_sigterm_s is None else f"{r.exit_after_sigterm_s:.2f} s"
    return (
        f"  {r.name} -> {r.replaced_by or '?'}: deleted t={t(r.deleted_at_s)}, "
        f"out of rotation t={t(r.rotation_out_at_s)}, SIGTERM t={t(r.sigterm_at_s)}, "
        f"exited t={t(r.exited_at_s)} ({after} after SIGTERM), exit code {r.exit_code}"
        + (" after SIGKILL" if r.sigkill else "")
    )


def report(
    title: str,
    summary: Summary,
    problems: list[str],
    *,
    replicas: Sequence[ReplicaReport] = (),
    haproxy_failures: dict[str, int] | None = None,
    json_path: Path | None = None,
    extra: dict[str, Any] | None = None,
    title_printed: bool = False,
) -> int:
    if not title_printed:
        print(f"== {title}")
    for line in render(summary, show_events=not replicas):
        print(line)
    if replicas:
        print("replicas (exit time and code of each replaced one)")
        for r in replicas:
            print(render_replica(r))
    if haproxy_failures:
        print("haproxy log      " + ", ".join(f"{k}: {v}" for k, v in haproxy_failures.items()))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    passed = not problems
    print(f"== {'PASS' if passed else 'FAIL'}: {summary.failed:,} failed of {summary.sent:,}")
    if json_path:
        payload = {
            "title": title,
            "passed": passed,
            "problems": problems,
            "summary": to_dict(summary),
            "replicas": [asdict(r) for r in replicas],
            "haproxy_failures": haproxy_failures or {},
            **(extra or {}),
        }
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
        if "timeline" in payload:  # the picture beside it (tools/drill/timeline_png.py)
            write_beside(json_path, payload)
    return EXIT_PASS if passed else EXIT_FAIL


async def _load(args: argparse.Namespace) -> int:
    config = load_config(args, args.url)
    beside = command_action(args.rollout, args.rollout_timeout) if args.rollout else None
    outcome = await run_drill(config, beside, warmup_s=args.warmup, settle_s=args.settle)
    problems = outcome.problems + verdict(
        outcome.summary, expect_failures=args.expect_failures, min_requests=args.min_requests
    )
    return report(
        f"load {args.url} at {args.rate:g}/s"
        + (f", rollout: {args.rollout}" if args.rollout else ""),
        outcome.summary,
        problems,
        json_path=args.json,
        extra={"timeline": series(outcome.results)},
    )


async def _local(args: argparse.Namespace) -> int:
    from tools.drill.local import LocalSettings, run_local

    if shutil.which(args.haproxy) is None:
        print(f"error: {args.haproxy} not found (Debian: apt-get install haproxy)", file=sys.stderr)
        return EXIT_ERROR
    settings = LocalSettings(
        replicas=args.replicas,
        workers=args.workers,
        prestop_s=args.prestop_seconds,
        shutdown_delay_s=args.shutdown_delay_seconds,
        grace_s=args.grace_seconds,
        termination_grace_s=args.termination_grace_seconds,
        endpoint_lags_s=args.endpoint_lag_seconds,
        control=args.control,
        stock_worker=args.stock_worker,
        proxy_mode=args.proxy_mode,
        database_url=args.database_url,
        haproxy_bin=args.haproxy,
        cwd=args.app_dir,
        keep_dir=args.keep_dir,
    )
    expect_failures = args.expect_failures or args.control
    title = (
        f"local drill{' (CONTROL: stock worker, no preStop, no delay)' if args.control else ''}"
        f"{' (stock worker)' if settings.stock_worker and not args.control else ''}: "
        f"{settings.replicas} replicas x {settings.workers} workers, {args.rate:g} req/s, "
        f"preStop {settings.prestop_s:g}s, "
        f"endpoint lags {','.join(f'{v:g}' for v in settings.endpoint_lags_s)}s, "
        f"shutdown delay {settings.shutdown_delay_s:g}s, grace {settings.grace_s:g}s, "
        f"terminationGracePeriod {settings.termination_grace:g}s, proxy {settings.proxy_mode}"
    )
    print(f"== {title}", flush=True)
    outcome = await run_local(
        settings,
        load_config(args, "http://127.0.0.1:1"),
        warmup_s=args.warmup,
        settle_s=args.settle,
    )
    problems = outcome.problems + verdict(
        outcome.summary, expect_failures=expect_failures, min_requests=args.min_requests
    )
    if outcome.workdir:
        print(f"run folder kept: {outcome.workdir}")
    return report(
        title,
        outcome.summary,
        problems,
        replicas=outcome.replicas,
        haproxy_failures=outcome.haproxy_failures,
        json_path=args.json,
        title_printed=True,
        extra={
            "control": args.control,
            "settings": asdict(settings) | {"cwd": "", "command": []},
            "timeline": series(outcome.results),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_load(args) if args.command == "load" else _local(args))
    except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"  {note}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
