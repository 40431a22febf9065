"""python -m tools.drill.chart --image IMAGE [--control] [--json out.json]"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tools.drill.cli import EXIT_ERROR, load_config, report
from tools.drill.load import DEFAULT_MIX, parse_mix
from tools.drill.results import verdict
from tools.drill.timeline_png import series


def build_parser() -> argparse.ArgumentParser:
    from tools.drill.chart.drill import CHART, DRILL_VALUES, PRODUCTION_VALUES

    p = argparse.ArgumentParser(
        prog="python -m tools.drill.chart",
        description="The chart's rendered pod spec and rolling update on Docker, under load "
        "through HAProxy. Exit 0 pass, 1 fail, 2 error.",
    )
    p.add_argument(
        "--image", required=True, help="the app image (make image), e.g. fastapi-app:local"
    )
    p.add_argument(
        "--control",
        action="store_true",
        help="the chart's preStop set to 0 and an endpoint lag above the shutdown delay: "
        "passes only if requests fail",
    )
    p.add_argument(
        "--endpoint-lag-seconds",
        type=float,
        default=None,
        help="from a Ready change or deletion to HAProxy's change (EndpointSlice + kube-proxy); "
        "default 1, control: SHUTDOWN_DELAY_SECONDS + 2",
    )
    p.add_argument("--chart", type=Path, default=CHART)
    p.add_argument(
        "--values", type=Path, action="append", default=None,
        help=f"values files (default: {PRODUCTION_VALUES.name} then {DRILL_VALUES.name})",
    )  # fmt: skip
    p.add_argument("--set", dest="set_values", action="append", default=[], help="helm --set")
    p.add_argument("--helm", default="helm")
    p.add_argument("--docker", default="docker")
    p.add_argument("--haproxy", default="haproxy")
    p.add_argument("--postgres-image", default="postgres:16-bookworm")
    p.add_argument("--redis-image", default="redis:7-bookworm")
    p.add_argument("--keep-dir", action="store_true", help="keep the run folder (logs, config)")
    g = p.add_argument_group("load")
    g.add_argument("--rate", type=float, default=100.0, help="requests per second (default 100)")
    g.add_argument("--duration", type=float, default=30.0, help="minimum seconds of load")
    g.add_argument("--max-duration", type=float, default=600.0)
    g.add_argument("--warmup", type=float, default=5.0)
    g.add_argument("--settle", type=float, default=5.0)
    g.add_argument("--mix", default=DEFAULT_MIX)
    g.add_argument("--long-task-seconds", type=float, default=3.0)
    g.add_argument("--fast-ms", type=int, default=1)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--min-requests", type=int, default=0)
    g.add_argument("--json", type=Path)
    return p


async def _run(args: argparse.Namespace) -> int:
    from tools.drill.chart.drill import (
        DRILL_VALUES,
        PRODUCTION_VALUES,
        ChartSettings,
        run_chart_drill,
        traced_kinds,
    )

    for tool in (args.helm, args.docker, args.haproxy):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found", file=sys.stderr)
            return EXIT_ERROR
    settings = ChartSettings(
        image=args.image,
        control=args.control,
        endpoint_lag_s=args.endpoint_lag_seconds,
        values=tuple(args.values or (PRODUCTION_VALUES, DRILL_VALUES)),
        set_values=tuple(args.set_values),
        chart=args.chart,
        helm=args.helm,
        docker=args.docker,
        haproxy_bin=args.haproxy,
        postgres_image=args.postgres_image,
        redis_image=args.redis_image,
        keep=args.keep_dir,
    )
    load = load_config(args, "http://127.0.0.1:1")
    kinds = traced_kinds(args.long_task_seconds)
    load.kinds = kinds
    load.mix = parse_mix(args.mix, set(kinds))
    print(
        f"== chart drill{' (CONTROL: preStop 0)' if args.control else ''}: {args.image}", flush=True
    )
    outcome = await run_chart_drill(settings, load, warmup_s=args.warmup, settle_s=args.settle)
    plan = outcome.plan
    title = (
        f"chart drill{' (CONTROL: preStop 0)' if args.control else ''}: {plan.deployment} x"
        f"{plan.replicas}, maxSurge {plan.max_surge}, maxUnavailable {plan.max_unavailable}, "
        f"minReadySeconds {plan.min_ready_s:g}, preStop "
        f"{plan.prestop.sleep_s:g}s, SHUTDOWN_DELAY_SECONDS "
        f"{plan.env.get('SHUTDOWN_DELAY_SECONDS', '-')}, GRACE_PERIOD_SECONDS "
        f"{plan.env.get('GRACE_PERIOD_SECONDS', '-')}, terminationGracePeriod "
        f"{plan.termination_grace_s:g}s, endpoint lag {outcome.endpoint_lag_s:g}s, "
        f"{args.rate:g} req/s"
    )
    print(f"pod spec: {' '.join(plan.docker_run_args('<pod>', '<net>'))}")
    for note in outcome.notes:
        print(f"not reproduced: {note}")
    print(
        f"logs: {outcome.log_lines:,} lines, all checked as JSON; "
        f"{outcome.traced_requests:,} access lines with the trace id sent"
    )
    if outcome.workdir:
        print(f"run folder kept: {outcome.workdir}")
    problems = outcome.problems + verdict(
        outcome.summary, expect_failures=args.control, min_requests=args.min_requests
    )
    if args.control:  # the control is about failed requests; its other findings are shown
        for problem in outcome.problems:
            print(f"control: {problem}")
        problems = verdict(outcome.summary, expect_failures=True, min_requests=args.min_requests)
    return report(
        title,
        outcome.summary,
        problems,
        replicas=[p.report for p in outcome.pods],
        haproxy_failures=outcome.haproxy_failures,
        json_path=args.json,
        extra={
            "control": args.control,
            "endpoint_lag_s": outcome.endpoint_lag_s,
            "pod_plan": asdict(plan) | {"env": sorted(plan.env)},
            "log_lines": outcome.log_lines,
            "traced_requests": outcome.traced_requests,
            "timeline": series(outcome.results),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"  {note}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
