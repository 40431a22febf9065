"""kind e2e: rolling updates under constant load through the NodePort lose no request.

The load is the drill tool's (`python -m tools.drill load`, as `make drill` uses it); the
rollout it runs beside the load is `kubectl rollout restart`, then an image-tag change by
`helm upgrade`, each followed by waiting until every old pod is gone. Meanwhile the suite
follows each old pod's log and watches the Service's EndpointSlices, to record when each
pod left the endpoints against its SIGTERM (its shutdown_started line).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.e2e import clock, drill_report, logs
from tests.e2e.cluster import Cluster, EndpointWatch, LogFollower, PodWatch, shell_and
from tests.e2e.endpoints import PodTiming, render_timings, timing_problems
from tools.testbed.support import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
REPLICAS = 3
MIN_LOAD_SECONDS = 30


def run_drill(
    cluster: Cluster, artifacts: Path, name: str, rollout: list[list[str]]
) -> tuple[list[str], str]:
    """Run `rollout` beside the drill's load; returns (problems, the report printed)."""
    s = cluster.settings
    cluster.wait_settled(REPLICAS)
    old_pods = cluster.pods()
    old = [str(p["metadata"]["name"]) for p in old_pods]
    assert len(old) == REPLICAS, old
    # Log times are their node's clock: measured against this machine's before and after.
    node_of = {str(p["metadata"]["name"]): str(p["spec"]["nodeName"]) for p in old_pods}
    offsets = {n: clock.node_offset(s.docker, n) for n in sorted(set(node_of.values()))}
    followers = {pod: LogFollower(cluster, pod).start_following() for pod in old}
    endpoints = EndpointWatch(cluster).start()
    pods = PodWatch(cluster).start()
    assert set(old) <= endpoints.history.in_rotation(), "old pods not all ready in the endpoints"

    gone = cluster.kubectl_args(
        "wait", "--for=delete", *[f"pod/{p}" for p in old], "--timeout=180s"
    )
    json_path = artifacts / f"drill-{name}.json"
    min_requests = int(s.drill_rate * MIN_LOAD_SECONDS * 0.9)
    command = [
        sys.executable, "-m", "tools.drill", "load",
        "--url", s.url,
        "--rollout", shell_and([*rollout, gone]),
        "--rate", f"{s.drill_rate:g}",
        "--duration", str(MIN_LOAD_SECONDS),
        "--warmup", "5",
        "--settle", "5",
        "--rollout-timeout", "900",
        "--max-duration", "1200",
        "--min-requests", str(min_requests),
        "--json", str(json_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1400)
    (artifacts / f"drill-{name}.log").write_text(done.stdout + done.stderr)

    for follower in followers.values():
        follower.wait_ended(120)
    history = endpoints.stop()
    pods.stop()
    offsets = {n: c.join(clock.node_offset(s.docker, n)) for n, c in offsets.items()}

    problems: list[str] = []
    if done.returncode != 0:
        problems.append(
            f"drill exited {done.returncode}: {done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    report = drill_report.load(json_path) if json_path.exists() else None
    if report is not None:
        problems += drill_report.drill_problems(report, min_requests=min_requests)

    timings: list[PodTiming] = []
    for pod, follower in followers.items():
        parsed = logs.parse_lines(follower.lines)
        problems += logs.describe_bad_lines(pod, parsed)
        problems += [f"{pod}: {p}" for p in logs.shutdown_problems(parsed.records)]
        ended = pods.terminated.get(pod)
        if ended is not None and ended.get("exitCode") != 0:
            problems.append(f"{pod}: container ended with {ended}")
        sigterm = logs.sigterm_at(parsed.records)
        last = logs.last_timestamp(parsed.records)
        node_clock = offsets[node_of[pod]]
        timings.append(
            PodTiming(
                pod=pod,
                deleted_at=pods.deleting_at.get(pod),
                left_at=history.left_at.get(pod),
                removed_at=history.removed_at.get(pod),
                sigterm_at=node_clock.to_host(sigterm.timestamp()) if sigterm else None,
                exited_at=node_clock.to_host(last.timestamp()) if last else None,
                clock_error_s=node_clock.error_s,
            )
        )
    problems += timing_problems(timings)

    cluster.wait_settled(REPLICAS)
    still_there = set(old) & set(cluster.pod_names())
    if still_there:
        problems.append(f"old pods still running after the rollout: {sorted(still_there)}")

    table = render_timings(timings)
    summary = [
        f"== {name}: {report.line() if report else 'no drill report'}",
        *table,
        *(f"{node}: {c.describe()}" for node, c in offsets.items()),
    ]
    (artifacts / f"drill-{name}-endpoints.json").write_text(
        json.dumps([asdict(t) | {"margin_s": t.margin_s} for t in timings], indent=2) + "\n"
    )
    (artifacts / f"drill-{name}-summary.txt").write_text("\n".join(summary) + "\n")
    return problems, "\n".join(summary)


def test_rollout_restart_under_load_loses_no_request(cluster: Cluster, artifacts: Path) -> None:
    deployment = f"deployment/{cluster.settings.release}"
    rollout = [
        cluster.kubectl_args("rollout", "restart", deployment),
        cluster.kubectl_args("rollout", "status", deployment, "--timeout=600s"),
    ]
    problems, summary = run_drill(cluster, artifacts, "rollout-restart", rollout)
    print("\n" + summary)
    assert not problems, "\n".join(problems)


def test_image_tag_change_under_load_loses_no_request(cluster: Cluster, artifacts: Path) -> None:
    s = cluster.settings
    deployment = f"deployment/{s.release}"
    upgrade = cluster.helm_args(
        "upgrade", s.release, str(s.chart),
        "--reuse-values",
        "--set", f"image.tag={s.next_tag}",
        "--wait", "--timeout", "10m",
    )  # fmt: skip
    rollout = [upgrade, cluster.kubectl_args("rollout", "status", deployment, "--timeout=600s")]
    problems, summary = run_drill(cluster, artifacts, "image-tag-change", rollout)
    print("\n" + summary)
    images = {
        c["image"]
        for pod in cluster.pods()
        for c in pod["spec"]["containers"]
        if c["name"] == "app"
    }
    assert images == {f"{s.image_repository}:{s.next_tag}"}, images
    assert not problems, "\n".join(problems)
