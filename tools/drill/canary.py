"""The canary drill: the chart's Flagger analysis run for real, locally (docs/canary.md).

The current version runs as the primaries (2 replicas, APP_VERSION=primary), a new release
as the canary (1 replica, APP_VERSION=canary), both behind HAProxy under constant load. A
real Prometheus scrapes every replica's METRICS_PORT each second, with the static target
labels a ServiceMonitor would add to Flagger's pods (namespace; pod <target>-<hash>-<id> for
the canary, <target>-primary-<hash>-<id> for the primaries). The analysis loop does what
Flagger does with the chart's rendered Canary and MetricTemplates (`helm template` with
canary.enabled=true): every interval it evaluates the templates' queries, Flagger's
variables substituted, through Prometheus' HTTP API; a passing step adds stepWeight to the
canary's share (HAProxy's runtime API, `set weight`), a passing step at maxWeight promotes
it, `threshold` failed checks roll it back (weight 0, canary removed).

Scenarios (`make drill-canary`): a good canary must be promoted with no failed request; an
erroring one (FAULT_ERROR_RATIO=0.2) rolled back before its weight passes 30 %, with at
most 3 % of the requests failed, all answered by the canary; a slow one (FAULT_DELAY_MS=800)
rolled back by the latency query. The control (`make drill-canary-control`) runs the
erroring canary with the analysis off and passes only if it was promoted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tools import REPO_ROOT
from tools.drill.haproxy import BACKEND, HAProxyProcess, HAProxySettings, ServerSlot
from tools.drill.haproxy import parse_stat_csv as _parse_stat_csv
from tools.drill.load import LoadConfig, default_kinds, parse_mix, run_drill
from tools.drill.local import allocate_ports, create_sqlite_database
from tools.drill.replica import Replica
from tools.drill.results import RequestResult, Timeline, to_dict
from tools.drill.timeline_png import series, write_beside

CHART = REPO_ROOT / "deploy/helm/fastapi-app"
RELEASE, NAMESPACE = "drill", "drill"
PRIMARIES = 2
MIX = "fast=90,items=10"  # no long tasks: 3 s requests would be the canary's p99
SCENARIOS: dict[str, dict[str, str]] = {  # the canary's fault settings
    "good": {},
    "errors": {"FAULT_ERROR_RATIO": "0.2"},
    "slow": {"FAULT_DELAY_MS": "800"},
}
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Metric:
    name: str
    query: str  # Flagger's variables substituted
    min: float | None
    max: float | None

    def passes(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False  # no data fails the check, as in Flagger
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class Analysis:
    step_weight: int
    max_weight: int
    threshold: int
    interval_s: float  # between two steps (the Canary's analysis.interval, shortened)
    metrics_interval: str  # {{ interval }} in the queries
    metrics: tuple[Metric, ...]
    target: str


def render_analysis(
    helm: str,
    *,
    interval_s: float,
    metrics_interval: str,
    step_weight: int | None = None,
    max_weight: int | None = None,
    threshold: int | None = None,
) -> Analysis:
    """`helm template` the chart with canary.enabled=true; the Canary's analysis and the
    MetricTemplates' queries with Flagger's variables substituted as Flagger does."""
    done = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
         "--set", "canary.enabled=true"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed: {done.stderr[-2000:]}")
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    canary = next(o for o in objects if o["kind"] == "Canary")
    templates = {o["metadata"]["name"]: o for o in objects if o["kind"] == "MetricTemplate"}
    spec = canary["spec"]["analysis"]
    target = canary["spec"]["targetRef"]["name"]
    metrics = []
    for m in spec["metrics"]:
        query: str = templates[m["templateRef"]["name"]]["spec"]["query"]
        variables = {
            "{{ namespace }}": canary["metadata"]["namespace"],
            "{{ target }}": target,
            "{{ interval }}": metrics_interval,
        }
        variables |= {f"{{{{ variables.{k} }}}}": v for k, v in m["templateVariables"].items()}
        for variable, value in variables.items():
            query = query.replace(variable, str(value))
        if "{{" in query:
            raise RuntimeError(f"unsubstituted variable in {m['name']}: {query}")
        limits = m["thresholdRange"]
        metrics.append(Metric(m["name"], query, limits.get("min"), limits.get("max")))
    return Analysis(
        step_weight=step_weight or int(spec["stepWeight"]),
        max_weight=max_weight or int(spec["maxWeight"]),
        threshold=threshold or int(spec["threshold"]),
        interval_s=interval_s,
        metrics_interval=metrics_interval,
        metrics=tuple(metrics),
        target=target,
    )


def pod_name(target: str, scenario: str, role: str, index: int) -> str:
    """Flagger's pod names: <target>-<hash>-<id> (canary), <target>-primary-<hash>-<id>."""
    digest = hashlib.sha256(f"{scenario}/{role}".encode()).hexdigest()
    prefix = f"{target}-primary" if role != "canary" else target
    return f"{prefix}-{digest[:9]}-{digest[9:13]}{index}"


class Prometheus:
    """Debian's prometheus, scraping static targets with their labels every second."""

    def __init__(self, binary: str, targets: dict[int, dict[str, str]], workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir / "prometheus"
        self.dir.mkdir()
        self.port = allocate_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "app",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": labels}
                        for port, labels in targets.items()
                    ],
                }
            ],
        }
        (self.dir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self._proc: asyncio.subprocess.Process | None = None
        self.client = httpx.AsyncClient(base_url=self.url, timeout=5)

    async def start(self, timeout_s: float = 60) -> None:
        with (self.dir / "prometheus.log").open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        async with asyncio.timeout(timeout_s):
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"prometheus exited with {self._proc.returncode}")
                try:
                    if (await self.client.get("/-/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

    async def value(self, promql: str) -> float | None:
        response = await self.client.get("/api/v1/query", params={"query": promql})
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    async def wait_up(self, port: int, timeout_s: float = 30) -> None:
        """Until Prometheus has scraped the target on this port successfully."""
        async with asyncio.timeout(timeout_s):
            while True:
                if await self.value(f'up{{instance="127.0.0.1:{port}"}}') == 1:
                    return
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await self.client.aclose()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()


@dataclass
class Step:
    t_s: float
    weight: int
    checks: list[dict[str, Any]]
    passed: bool
    failed_checks: int
    versions: dict[str, int] = field(default_factory=dict)  # answers in this step, by version
    failures: int = 0


@dataclass
class ScenarioResult:
    name: str
    canary_env: dict[str, str]
    analysis_on: bool
    decision: str = ""  # "promoted" | "rolled_back" | "" (none: an error)
    decided_at_s: float | None = None
    started_at_s: float | None = None
    weight_at_decision: int = 0
    steps: list[Step] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    failed_by_version: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    promotion_done_at_s: float | None = None
    versions_after_promotion: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def time_to_decision_s(self) -> float | None:
        if self.decided_at_s is None or self.started_at_s is None:
            return None
        return round(self.decided_at_s - self.started_at_s, 1)


class Scenario:
    """HAProxy, primaries, a canary and the analysis loop for one release."""

    def __init__(
        self,
        name: str,
        analysis: Analysis,
        *,
        analysis_on: bool,
        ports: list[int],
        workdir: Path,
        haproxy_bin: str,
        workers: int,
    ) -> None:
        self.name = name
        self.analysis = analysis
        self.result = ScenarioResult(name, SCENARIOS[name], analysis_on)
        self.workdir = workdir
        base = {
            "WEB_CONCURRENCY": str(workers),
            "GRACE_PERIOD_SECONDS": "5",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "DATABASE_URL": f"sqlite:///{workdir / 'drill.db'}",
            "LOG_LEVEL": "warning",
            "DEMO_ROUTES": "true",
        }
        # primaries p1.., the canary c1, the promoted primaries n1..: (name, role, env)
        roles = [(f"p{i + 1}", "primary", {"APP_VERSION": "primary"}) for i in range(PRIMARIES)]
        canary_env = {"APP_VERSION": "canary", **SCENARIOS[name]}
        roles.append(("c1", "canary", canary_env))
        roles += [(f"n{i + 1}", "promoted", canary_env) for i in range(PRIMARIES)]
        self.frontend_port = ports[0]
        self.replicas: dict[str, Replica] = {}
        self.targets: dict[int, dict[str, str]] = {}
        for i, (rname, role, env) in enumerate(roles):
            metrics_port = ports[1 + len(roles) + i]
            self.replicas[rname] = Replica(
                name=rname,
                port=ports[1 + i],
                env={**base, **env, "METRICS_PORT": str(metrics_port)},
                log_path=workdir / f"{name}-{rname}.log",
            )
            pod = pod_name(analysis.target, name, role, i)
            self.targets[metrics_port] = {"namespace": NAMESPACE, "pod": pod, "drill": name}
        self.haproxy = HAProxyProcess(
            haproxy_bin,
            HAProxySettings(
                frontend_port=self.frontend_port,
                socket_path=workdir / f"{name}-haproxy.sock",
                servers=tuple(
                    ServerSlot(r.name, r.port, r.name.startswith("p"))
                    for r in self.replicas.values()
                ),
            ),
            workdir / name,
        )
        (workdir / name).mkdir()

    @staticmethod
    def ports_needed() -> int:
        return 1 + 2 * (2 * PRIMARIES + 1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.frontend_port}"

    def group(self, prefix: str) -> list[Replica]:
        return [r for n, r in self.replicas.items() if n.startswith(prefix)]

    async def start(self, prometheus: Prometheus) -> None:
        await self.haproxy.start()
        first = self.group("p") + self.group("c")
        await asyncio.gather(*(r.start() for r in first))
        await asyncio.gather(*(r.wait_ready(60) for r in first))
        await self.set_weights(0)
        await self.join(self.group("c"), 0)
        for r in first:
            await self.haproxy.api.wait_status(r.name, "UP", 30)
            await prometheus.wait_up(int(r.env["METRICS_PORT"]))

    async def join(self, replicas: list[Replica], weight: int) -> None:
        for r in replicas:
            await self.set_weight(r.name, weight)
            await self.haproxy.api.set_state(r.name, "ready")
        for r in replicas:
            await self.haproxy.api.wait_status(r.name, "UP", 30)

    async def set_weight(self, server: str, weight: int) -> None:
        answer = await self.haproxy.api.command(f"set weight {BACKEND}/{server} {weight}")
        if answer.strip():
            raise RuntimeError(f"haproxy refused 'set weight {server} {weight}': {answer!r}")

    async def set_weights(self, canary_percent: int) -> None:
        """The canary gets canary_percent of the requests: each of the N primaries weighs
        100 - w, the canary N * w (HAProxy's weights are relative, 0..256)."""
        for r in self.group("p"):
            await self.set_weight(r.name, 100 - canary_percent)
        await self.set_weight("c1", PRIMARIES * canary_percent)

    async def retire(self, replicas: list[Replica], timeout_s: float = 15) -> None:
        """Out of rotation first (drain), until HAProxy has no request on them, then stop."""
        for r in replicas:
            await self.haproxy.api.set_state(r.name, "drain")
        async with asyncio.timeout(timeout_s):
            while True:
                rows = _parse_stat_csv(await self.haproxy.api.command("show stat"))
                if all(rows[r.name].get("scur") == "0" for r in replicas):
                    break
                await asyncio.sleep(0.1)
        await asyncio.gather(*(r.stop() for r in replicas))
        for r in replicas:
            await self.haproxy.api.set_state(r.name, "maint")

    async def evaluate(self, prometheus: Prometheus) -> list[dict[str, Any]]:
        checks = []
        for m in self.analysis.metrics:
            value = await prometheus.value(m.query)
            shown = None if value is None or math.isnan(value) else round(value, 2)
            checks.append(
                {"metric": m.name, "value": shown, "min": m.min, "max": m.max,
                 "passed": m.passes(value)}
            )  # fmt: skip
        return checks

    async def run_analysis(self, prometheus: Prometheus, timeline: Timeline) -> list[str]:
        a, res = self.analysis, self.result
        res.started_at_s = timeline.now()
        weight, failed, advance = 0, 0, True
        for _ in range(a.max_weight // a.step_weight + a.threshold + 1):  # bounded
            if advance:
                weight = min(weight + a.step_weight, a.max_weight)
                await self.set_weights(weight)
                timeline.record("weight", "c1", weight=weight)
            await asyncio.sleep(a.interval_s)
            checks = await self.evaluate(prometheus)
            passed = all(c["passed"] for c in checks)
            failed += 0 if passed else 1
            res.steps.append(Step(round(timeline.now(), 2), weight, checks, passed, failed))
            print(f"  {self.name}: weight {weight:3d} %  " + "  ".join(
                f"{c['metric']}={c['value']} ({'ok' if c['passed'] else 'FAIL'})" for c in checks
            ), flush=True)  # fmt: skip
            if res.analysis_on and failed >= a.threshold:
                res.decision, res.weight_at_decision = "rolled_back", weight
                res.decided_at_s = timeline.record("rolled_back", "c1").t_s
                await self.set_weights(0)
                await self.retire(self.group("c"))
                return []
            advance = passed or not res.analysis_on
            if advance and weight >= a.max_weight:
                res.decision, res.weight_at_decision = "promoted", weight
                res.decided_at_s = timeline.record("promoted", "c1").t_s
                await self.promote(weight)
                res.promotion_done_at_s = timeline.record("promotion_done").t_s
                return []
        return [f"no decision after {len(res.steps)} steps"]

    async def promote(self, weight: int) -> None:
        """The canary's version replaces the primaries: new primaries start with its
        settings and join at the primaries' weight, then the old ones and the canary leave
        the rotation and stop once HAProxy has no request on them."""
        new = self.group("n")
        await asyncio.gather(*(r.start() for r in new))
        await asyncio.gather(*(r.wait_ready(60) for r in new))
        await self.join(new, 100 - weight)
        await self.retire(self.group("p") + self.group("c"))
        for r in new:
            await self.set_weight(r.name, 100)

    async def stop(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.replicas.values()))
        await self.haproxy.stop()


def judge(res: ScenarioResult, control: bool) -> list[str]:
    """What each scenario exists to show; empty when it showed it."""
    problems = []
    if res.decision == "promoted" and set(res.versions_after_promotion) != {"canary"}:
        problems.append(f"answers after the promotion: {res.versions_after_promotion}")
    sent, failed = res.summary.get("sent", 0), res.summary.get("failed", 0)
    if not res.steps:
        return ["the analysis made no step"]
    if control:
        if res.decision != "promoted":
            problems.append(
                f"control: the canary was {res.decision or 'not decided'}, not promoted"
            )
        return problems
    if res.name == "good":
        if res.decision != "promoted":
            problems.append(f"the good canary was {res.decision or 'not decided'}, not promoted")
        if failed:
            problems.append(f"{failed} of {sent} requests failed")
        if res.versions.get("canary", 0) == 0:
            problems.append("the canary answered no request")
        return problems
    if res.decision != "rolled_back":
        problems.append(
            f"the {res.name} canary was {res.decision or 'not decided'}, not rolled back"
        )
    if res.weight_at_decision > 30:
        problems.append(f"rolled back only at weight {res.weight_at_decision} % (> 30 %)")
    judged = {"errors": "success-rate", "slow": "latency-p99"}[res.name]
    failing = {c["metric"] for s in res.steps for c in s.checks if not c["passed"]}
    if judged not in failing:
        problems.append(f"{judged} never failed (failing: {sorted(failing)})")
    if res.name == "errors":
        if failed == 0:
            problems.append("no request failed: the faults did not reach the load")
        if failed > 0.03 * sent:
            problems.append(f"{failed} of {sent} requests failed (> 3 %)")
        others = {v: n for v, n in res.failed_by_version.items() if v != "canary"}
        if others:
            problems.append(f"failures not answered by the canary: {others}")
    return problems


def account(res: ScenarioResult, results: list[RequestResult]) -> None:
    """Per step: the answers by version and the failures among the requests sent in it."""
    res.versions = dict(Counter(r.version or "-" for r in results if r.status is not None))
    res.failed_by_version = dict(Counter(r.version or "-" for r in results if not r.ok))
    if res.promotion_done_at_s is not None:
        after = [r for r in results if r.due_s > res.promotion_done_at_s and r.status]
        res.versions_after_promotion = dict(Counter(r.version or "-" for r in after))
    start = res.started_at_s or 0.0
    for step in res.steps:
        window = [r for r in results if start <= r.due_s < step.t_s]
        step.versions = dict(Counter(r.version or "-" for r in window if r.status is not None))
        step.failures = sum(not r.ok for r in window)
        start = step.t_s


async def run(args: argparse.Namespace) -> int:
    analysis = render_analysis(
        args.helm,
        interval_s=args.interval,
        metrics_interval=args.metrics_interval,
        step_weight=args.step_weight,
        max_weight=args.max_weight,
        threshold=args.threshold,
    )
    names = ["errors"] if args.control else args.scenarios
    workdir = Path(tempfile.mkdtemp(prefix="fastapi-app-drill-canary-"))
    create_sqlite_database(workdir / "drill.db")
    ports = allocate_ports(len(names) * Scenario.ports_needed())
    n = Scenario.ports_needed()
    scenarios = [
        Scenario(name, analysis, analysis_on=not args.control, ports=ports[i * n : (i + 1) * n],
                 workdir=workdir, haproxy_bin=args.haproxy, workers=args.workers)
        for i, name in enumerate(names)
    ]  # fmt: skip
    prometheus = Prometheus(
        args.prometheus, {p: t for s in scenarios for p, t in s.targets.items()}, workdir
    )
    print(
        f"== canary drill{' (CONTROL: analysis off)' if args.control else ''}: "
        f"{', '.join(names)}; stepWeight {analysis.step_weight} %, maxWeight "
        f"{analysis.max_weight} %, threshold {analysis.threshold}, every {analysis.interval_s:g}"
        f" s, queries over [{analysis.metrics_interval}], {args.rate:g} req/s",
        flush=True,
    )
    kinds = default_kinds()
    try:
        await prometheus.start()
        for s in scenarios:
            try:
                await s.start(prometheus)
                load = LoadConfig(
                    url=s.url, rate=args.rate, duration_s=1, max_duration_s=args.max_duration,
                    kinds=kinds, mix=parse_mix(args.mix, set(kinds)), request_id_prefix=s.name,
                )  # fmt: skip
                outcome = await run_drill(
                    load,
                    lambda tl, s=s: s.run_analysis(prometheus, tl),  # type: ignore[misc]
                    warmup_s=args.warmup,
                    settle_s=args.settle,
                )
            finally:
                await s.stop()
            res = s.result
            res.summary = to_dict(outcome.summary)
            account(res, outcome.results)
            res.problems = outcome.problems + judge(res, args.control)
            if args.json:
                picture = args.json.with_name(f"{args.json.stem}-{s.name}.json")
                title = f"canary drill, {s.name}: {res.decision or 'no decision'}"
                write_beside(
                    picture,
                    {"title": title, "passed": not res.problems, "summary": res.summary,
                     "timeline": series(outcome.results),
                     "analysis_steps": [dataclasses.asdict(step) for step in res.steps]},
                )  # fmt: skip
    except BaseException as exc:
        exc.add_note(f"drill run folder kept for inspection: {workdir}")
        raise
    finally:
        await prometheus.stop()
    results = [s.result for s in scenarios]
    for res in results:
        print(
            f"{res.name}: {res.decision or 'no decision'} at weight {res.weight_at_decision} % "
            f"after {len(res.steps)} steps, {res.time_to_decision_s} s; "
            f"{res.summary['failed']} of {res.summary['sent']} failed "
            f"(by version {res.failed_by_version}); answers {res.versions}"
        )
        for problem in res.problems:
            print(f"PROBLEM ({res.name}): {problem}")
    passed = all(not r.problems for r in results)
    if args.json:
        payload = {
            "title": "canary drill" + (" (control: analysis off)" if args.control else ""),
            "control": args.control,
            "passed": passed,
            "analysis": dataclasses.asdict(analysis),
            "scenarios": [
                dataclasses.asdict(r) | {"time_to_decision_s": r.time_to_decision_s}
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if args.keep_dir:
        print(f"run folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"== {'PASS' if passed else 'FAIL'}")
    return EXIT_PASS if passed else EXIT_FAIL


def scenario_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS)
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"scenarios among {', '.join(SCENARIOS)}: {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.drill.canary",
        description="Canary drill: the chart's Flagger analysis against a real Prometheus, "
        "HAProxy weights, real replicas. Exit 0 pass, 1 fail, 2 error.",
    )
    p.add_argument("--control", action="store_true", help="the erroring canary, analysis off")
    p.add_argument("--scenarios", type=scenario_list, default=list(SCENARIOS))
    p.add_argument("--step-weight", type=int, help="default: the rendered Canary's")
    p.add_argument("--max-weight", type=int, help="default: the rendered Canary's")
    p.add_argument("--threshold", type=int, help="default: the rendered Canary's")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between steps")
    p.add_argument("--metrics-interval", default="10s", help="{{ interval }} in the queries")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second")
    p.add_argument("--mix", default=MIX)
    p.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY per replica")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--max-duration", type=float, default=300.0, help="per scenario")
    p.add_argument("--helm", default=str(REPO_ROOT / ".tools/bin/helm"))
    p.add_argument("--haproxy", default="haproxy")
    p.add_argument("--prometheus", default="prometheus")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep-dir", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for tool in (args.helm, args.haproxy, args.prometheus):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found (helm: make tools; Debian: apt-get install "
                  "haproxy prometheus)", file=sys.stderr)  # fmt: skip
            return EXIT_ERROR
    try:
        return asyncio.run(run(args))
    except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"  {note}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
