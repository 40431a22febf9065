# Usage: .venv/bin/python -m bench.memory [--minutes M] [--variants V,...]  (make bench-memory)
"""Memory growth under a steady load: RSS per worker after 1 and after 5 minutes at half
the measured capacity. A leak shows as growth between the two; a worker that was replaced
(a crash, max_requests) shows as a new pid.

Per variant (bench/run.py's, default full): the real Gunicorn command against the same
throwaway PostgreSQL, Redis and local OTLP receiver as `make bench`; its capacity on the
route measured flat out (wrk, 32 connections, after a warm-up), then a paced load at half
of it (each connection waits between requests: bench/wrk_paced.lua) for the whole run,
with each worker's VmRSS read at the start, after 1 minute and at the end. Kept apart from
`make bench` because it takes minutes per variant. Writes results/memory.json."""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import LoadError, children, rss_mib, run_wrk
from bench.run import (
    RESULTS_DIR,
    backing_servers,
    git_commit,
    log,
    make_variant,
    seed_item,
    start_services,
    stop_services,
)

CONNECTIONS = 32
CAPACITY_S = 5.0
WARMUP_S = 2.0
FIRST_SAMPLE_S = 60.0


def worker_rss(pid: int) -> dict[str, float | None]:
    return {str(worker): rss_mib(worker) for worker in children(pid)}


def measure(
    name: str, route: str, minutes: float, tmp: Path, urls: tuple[str, str]
) -> dict[str, Any]:
    variant = make_variant(name)
    with variant.receiver:
        start_services([variant], *urls, tmp)
        try:
            service = variant.service
            assert service is not None and service.process is not None
            path = route.replace("{id}", str(seed_item(service)))
            url = service.url + path
            pid = service.process.pid
            run_wrk(url, WARMUP_S, CONNECTIONS)
            capacity = run_wrk(url, CAPACITY_S, CONNECTIONS).requests_per_s
            target = capacity / 2
            delay_ms = CONNECTIONS * 1000 / target
            log(
                f"  {name}: capacity {capacity:,.0f}/s; "
                f"paced at ~{target:,.0f}/s for {minutes:g} min"
            )
            samples = {"start": worker_rss(pid)}
            total = minutes * 60
            first = run_wrk(url, min(FIRST_SAMPLE_S, total), CONNECTIONS, delay_ms=delay_ms)
            samples["1_min"] = worker_rss(pid)
            log(f"  {name}: after 1 min {samples['1_min']} MiB ({first.requests_per_s:,.0f}/s)")
            rest = run_wrk(url, max(1.0, total - FIRST_SAMPLE_S), CONNECTIONS, delay_ms=delay_ms)
            samples[f"{minutes:g}_min"] = worker_rss(pid)
            log(f"  {name}: after {minutes:g} min {samples[f'{minutes:g}_min']} MiB")
        finally:
            stop_services([variant])
    end = samples[f"{minutes:g}_min"]
    growth = {
        worker: round(rss - samples["1_min"][worker], 1)  # type: ignore[operator]
        for worker, rss in end.items()
        if rss is not None and samples["1_min"].get(worker) is not None
    }
    return {
        "route": route,
        "capacity_per_s": capacity,
        "paced_per_s": [first.requests_per_s, rest.requests_per_s],
        "errors": first.errors + rest.errors,
        "rss_mib_per_worker": samples,
        "growth_mib_1_to_end": growth,
        "workers_replaced": sorted(set(end) ^ set(samples["start"])) != [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--variants", default="full")
    parser.add_argument("--route", default="/api/items/{id}")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.minutes * 60 <= FIRST_SAMPLE_S:
        parser.error("--minutes must be more than 1")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    results: dict[str, Any] = {
        "conditions": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": git_commit(),
            "minutes": args.minutes,
            "connections": CONNECTIONS,
        },
        "variants": {},
    }
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-memory-")))
            log("starting PostgreSQL and Redis")
            postgres, redis = stack.enter_context(backing_servers())
            for name in names:
                results["variants"][name] = measure(
                    name, args.route, args.minutes, tmp, (postgres.url, redis.url)
                )
    except LoadError as exc:
        print(f"bench.memory: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(
        f"{'variant':<19}{'capacity/s':>11}{'paced/s':>9}{'RSS/worker MiB: start':>23}"
        f"{'1 min':>14}{'end':>14}{'growth':>9}"
    )
    for name, info in results["variants"].items():
        rss = info["rss_mib_per_worker"]
        keys = list(rss)

        def cell(sample: dict[str, float | None]) -> str:
            return "/".join(f"{v:.1f}" for v in sample.values() if v is not None)

        growth = max(info["growth_mib_1_to_end"].values(), default=0.0)
        print(
            f"{name:<19}{info['capacity_per_s']:>11,.0f}"
            f"{statistics.median(info['paced_per_s']):>9,.0f}{cell(rss[keys[0]]):>23}"
            f"{cell(rss[keys[1]]):>14}{cell(rss[keys[2]]):>14}{growth:>+9.1f}"
        )
    problems = [
        f"{name}: {info['errors']} failed requests"
        for name, info in results["variants"].items()
        if info["errors"]
    ] + [
        f"{name}: a worker was replaced"
        for name, info in results["variants"].items()
        if info["workers_replaced"]
    ]
    for problem in problems:
        print(f"bench.memory: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
