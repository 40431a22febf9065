"""The chart's own rollout on Docker: render, start, roll, check (see tools/drill/chart).

1. `helm template` with the chart's production values and the drill's values file (the
   database URL and Secret the chart wants for more than one replica), twice: revision
   "a" with image tag A, revision "b" with tag B (one image under two tags), so the
   rollout is an image change as `helm upgrade --set image.tag=...` makes it.
2. PostgreSQL and Redis containers on a fresh network, named as the values file's URLs
   say; the migrations run once, from the app image with revision a's pod environment
   (`python -m service.data.migrate`), as a pre-install Job would.
3. HAProxy in front (no health checks of its own: it routes to what the EndpointSlice
   stand-in says, a fixed lag after each pod's Ready change or deletion), the N pods of
   revision a, Ready and in rotation.
4. Under constant load (tools/drill/load, with a traceparent per request): the Deployment
   controller's rolling update with maxSurge, maxUnavailable and minReadySeconds, each old
   pod deleted the kubelet's way (tools/drill/chart/pods.py).
5. The verdict: no failed request, no SIGKILL, exit code 0, every log line JSON, and each
   answered request's access line carries the trace id it was sent with.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import REPO_ROOT
from tools.drill import http
from tools.drill.chart.pods import DockerCLI, Pod
from tools.drill.chart.spec import PodPlan, plan_from_documents
from tools.drill.haproxy import HAProxyProcess, HAProxySettings, ServerSlot, failures_in_log
from tools.drill.load import LoadConfig, RequestKind, default_kinds, run_drill
from tools.drill.results import RequestResult, Summary, Timeline
from tools.testbed.jsonlines import parse_json_line

CHART = REPO_ROOT / "deploy/helm/fastapi-app"
PRODUCTION_VALUES = CHART / "ci/production-values.yaml"
DRILL_VALUES = Path(__file__).resolve().parent / "values-drill.yaml"
RELEASE = "drill"
REQUEST_ID_PREFIX = "chart-drill"


def trace_ids(request_id: str) -> tuple[str, str]:
    """The (trace id, parent span id) a request is sent with, derived from its id."""
    digest = hashlib.sha256(request_id.encode()).hexdigest()
    return digest[:32], digest[32:48]


@dataclass(frozen=True)
class TracedKind(RequestKind):
    """A mix entry whose requests carry a W3C traceparent (sampled) besides X-Request-ID."""

    def render(self, n: int, host: str, request_id: str) -> bytes:
        trace, span = trace_ids(request_id)
        headers = {"X-Request-ID": request_id, "traceparent": f"00-{trace}-{span}-01"}
        body = self.body.replace("{n}", str(n)).encode()
        if body:
            headers["Content-Type"] = "application/json"
        return http.render_request(
            self.method, self.path.replace("{n}", str(n)), host, headers, body
        )


def traced_kinds(long_task_seconds: float = 3.0) -> dict[str, RequestKind]:
    return {
        name: TracedKind(k.name, k.method, k.path, k.timeout_s, k.body)
        for name, k in default_kinds(long_task_seconds).items()
    }


@dataclass
class ChartSettings:
    image: str  # the app image (tagged twice: <repo>:<tag>-a and -b)
    control: bool = False  # preStop 0 and an endpoint lag above the app's shutdown delay
    endpoint_lag_s: float | None = None  # default: 1 s; control: shutdown delay + 2 s
    values: tuple[Path, ...] = (PRODUCTION_VALUES, DRILL_VALUES)
    set_values: tuple[str, ...] = ()
    chart: Path = CHART
    helm: str = "helm"
    docker: str = "docker"
    haproxy_bin: str = "haproxy"
    postgres_image: str = "postgres:16-bookworm"
    redis_image: str = "redis:7-bookworm"
    ready_timeout_s: float = 120.0
    keep: bool = False


@dataclass
class ChartOutcome:
    summary: Summary
    results: list[RequestResult]
    pods: list[Pod]
    problems: list[str]
    haproxy_failures: dict[str, int]
    plan: PodPlan
    endpoint_lag_s: float
    log_lines: int = 0
    traced_requests: int = 0
    workdir: str = ""
    notes: list[str] = field(default_factory=list)


def helm_template(s: ChartSettings, tag: str, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    repository, _, _ = s.image.rpartition(":")
    args = [s.helm, "template", RELEASE, str(s.chart)]
    for values in s.values:
        args += ["-f", str(values)]
    sets = [
        f"image.repository={repository or s.image}", f"image.tag={tag}", "image.digest=",
        "image.pullPolicy=Never", *s.set_values, *extra,
    ]  # fmt: skip
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed: {done.stderr.strip()[-2000:]}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def database_hosts(plan: PodPlan) -> dict[str, str]:
    """Host names the pod's DATABASE_URL and REDIS_URL point at (the containers to run)."""
    from urllib.parse import urlsplit

    hosts = {}
    for key in ("DATABASE_URL", "REDIS_URL"):
        url = plan.env.get(key, "")
        if url:
            hosts[key] = urlsplit(url).hostname or ""
    return hosts


class ChartDrill:
    def __init__(self, s: ChartSettings, workdir: Path) -> None:
        self.s = s
        self.workdir = workdir
        self.docker = DockerCLI(s.docker)
        self.network = f"fastapi-app-drill-{secrets.token_hex(3)}"
        repository, _, tag = s.image.rpartition(":")
        self.repository, self.tag = (repository, tag) if repository else (s.image, "latest")
        extra = ("shutdown.preStopSeconds=0",) if s.control else ()
        self.plans = {
            rev: plan_from_documents(helm_template(s, f"{self.tag}-{rev}", extra))
            for rev in ("a", "b")
        }
        self.plan = self.plans["a"]
        delay = float(self.plan.env.get("SHUTDOWN_DELAY_SECONDS", "0") or 0)
        default_lag = delay + 2.0 if s.control else 1.0
        self.endpoint_lag_s = s.endpoint_lag_s if s.endpoint_lag_s is not None else default_lag
        self.timeline = Timeline()
        n = self.plan.replicas
        self.pods = {
            rev: [
                Pod(
                    f"{self.plan.deployment}-{rev}-{i + 1}-{self.network[-6:]}", rev,
                    self.plans[rev], self.docker, self.network, self.timeline,
                    self.ready_changed,
                )
                for i in range(n)
            ]
            for rev in ("a", "b")
        }  # fmt: skip
        self.frontend_port = _free_port()
        self.haproxy = HAProxyProcess(
            s.haproxy_bin,
            HAProxySettings(
                frontend_port=self.frontend_port,
                socket_path=workdir / "haproxy.sock",
                servers=tuple(ServerSlot(p.name, 1, False) for p in self.all_pods),
                health_checks=False,
            ),
            workdir,
        )
        self.services: list[str] = []
        self.problems: list[str] = []

    @property
    def all_pods(self) -> list[Pod]:
        return [*self.pods["a"], *self.pods["b"]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.frontend_port}"

    # -- the EndpointSlice and kube-proxy stand-in -----------------------------------------

    async def ready_changed(self, pod: Pod, ready: bool) -> None:
        if pod.deleting:
            return  # a terminating pod is not ready in the EndpointSlice whatever it answers
        asyncio.create_task(self._membership(pod, ready))  # noqa: RUF006 - awaited via state

    async def _membership(self, pod: Pod, ready: bool) -> None:
        await asyncio.sleep(self.endpoint_lag_s)
        if ready and pod.deleting:
            return
        api = self.haproxy.api
        if ready:
            port = pod.plan.readiness.port if pod.plan.readiness else 8000
            await api.command(f"set server replicas/{pod.name} addr {pod.ip} port {port}")
            await api.set_state(pod.name, "ready")
            pod.report.port = port
            pod.in_rotation = True
            self.timeline.record("in_rotation", pod.name)
        else:
            await api.set_state(pod.name, "drain")
            pod.in_rotation = False
            if pod.report.rotation_out_at_s is None:
                pod.report.rotation_out_at_s = self.timeline.record("rotation_out", pod.name).t_s

    async def endpoint_removal(self, pod: Pod) -> None:
        await asyncio.sleep(self.endpoint_lag_s)
        await self.haproxy.api.set_state(pod.name, "drain")
        pod.in_rotation = False
        pod.report.rotation_out_at_s = self.timeline.record("rotation_out", pod.name).t_s

    # -- set-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        d = self.docker
        await d("tag", self.s.image, f"{self.repository}:{self.tag}-a")
        await d("tag", self.s.image, f"{self.repository}:{self.tag}-b")
        await d("network", "create", self.network)
        await self.start_backing_services()
        await self.migrate()
        await self.haproxy.start()
        await asyncio.gather(*(p.start() for p in self.pods["a"]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.s.ready_timeout_s
        while loop.time() < deadline:
            problems = [x for p in self.pods["a"] for x in p.problems]
            if problems:
                raise RuntimeError("; ".join(problems) + await self.log_tails(self.pods["a"]))
            if all(p.in_rotation for p in self.pods["a"]):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(
            f"revision a not in rotation after {self.s.ready_timeout_s:g} s"
            + await self.log_tails(self.pods["a"])
        )

    async def log_tails(self, pods: Sequence[Pod]) -> str:
        tails = []
        for p in pods:
            lines = (await p.logs()).strip().splitlines()[-3:]
            tails.append(f"\n  {p.name}: " + " | ".join(lines))
        return "".join(tails)

    async def start_backing_services(self) -> None:
        hosts = database_hosts(self.plan)
        if "DATABASE_URL" not in hosts:
            raise RuntimeError("the rendered pod has no DATABASE_URL (see values-drill.yaml)")
        from urllib.parse import urlsplit

        db = urlsplit(self.plan.env["DATABASE_URL"])
        name = f"{hosts['DATABASE_URL']}"
        await self.docker(
            "run", "--detach", "--name", f"{name}-{self.network[-6:]}", "--network", self.network,
            "--network-alias", name,
            "--env", f"POSTGRES_USER={db.username}", "--env", f"POSTGRES_PASSWORD={db.password}",
            "--env", f"POSTGRES_DB={db.path.lstrip('/')}", self.s.postgres_image,
        )  # fmt: skip
        self.services.append(f"{name}-{self.network[-6:]}")
        if hosts.get("REDIS_URL"):
            redis = hosts["REDIS_URL"]
            await self.docker(
                "run", "--detach", "--name", f"{redis}-{self.network[-6:]}",
                "--network", self.network, "--network-alias", redis, self.s.redis_image,
            )  # fmt: skip
            self.services.append(f"{redis}-{self.network[-6:]}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        container = f"{name}-{self.network[-6:]}"
        while loop.time() < deadline:
            ready = await self.docker(
                "exec", container, "pg_isready", "-q", "-h", "127.0.0.1",
                "-U", db.username or "postgres", "-d", db.path.lstrip("/"), check=False,
            )  # fmt: skip
            if ready.code == 0:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"PostgreSQL ({self.s.postgres_image}) not ready after 90 s")

    async def migrate(self) -> None:
        """The schema, as a pre-install Job would: the app image, the pod's environment."""
        name = f"migrate-{self.network[-6:]}"
        args = self.plan.docker_run_args(name, self.network)
        args.remove("--detach")
        image_at = args.index(self.plan.image)
        args = [*args[:image_at], "--entrypoint", "python", self.plan.image, "-m",
                "service.data.migrate"]  # fmt: skip
        done = await self.docker("run", "--rm", *args, check=False, timeout_s=180)
        (self.workdir / "migrate.log").write_text(done.out)
        if done.code != 0:
            raise RuntimeError(f"migrations failed (exit {done.code}): {done.out[-1500:]}")

    async def stop(self) -> None:
        await asyncio.gather(*(p.remove() for p in self.all_pods), return_exceptions=True)
        for name in self.services:
            await self.docker("rm", "--force", name, check=False)
        await self.docker("network", "rm", self.network, check=False)
        for rev in ("a", "b"):
            await self.docker("rmi", f"{self.repository}:{self.tag}-{rev}", check=False)
        await self.haproxy.stop()

    # -- the Deployment controller -------------------------------------------------------------

    async def rollout(self, timeline: Timeline) -> list[str]:
        plan = self.plan
        n, surge, unavailable = plan.replicas, plan.max_surge, plan.max_unavailable
        old, new = list(self.pods["a"]), list(self.pods["b"])
        created: list[Pod] = []
        deletions: list[asyncio.Task[None]] = []
        starts: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 600
        timeline.record("rollout_started", plan.deployment, surge=surge, unavailable=unavailable)
        while loop.time() < deadline:
            now = loop.time()
            active_old = [p for p in old if not p.deleting]
            if not active_old and len(created) == n and all(p.available(now) for p in created):
                break
            for p in created:
                if p.problems:
                    return [*p.problems]
            while len(active_old) + len(created) < n + surge and len(created) < n:
                pod = new[len(created)]
                created.append(pod)
                starts.append(asyncio.create_task(pod.start()))
            to_delete = scale_down(active_old, created, n, unavailable, now)
            for pod in to_delete:
                deletions.append(asyncio.create_task(pod.delete(self.endpoint_removal)))
            await asyncio.sleep(0.1)
        else:
            return ["the rollout did not finish within 600 s"]
        timeline.record("rollout_complete", plan.deployment)
        await asyncio.gather(*starts)
        await asyncio.gather(*deletions)
        problems: list[str] = []
        for pod in old:
            problems += pod.problems
            if pod.report.sigkill:
                problems.append(
                    f"{pod.name} was still running {plan.termination_grace_s:g} s after its "
                    "deletion: SIGKILL"
                )
            if pod.exit_code != 0 and not self.s.control:
                problems.append(f"{pod.name} exited with code {pod.exit_code}")
        return problems


def scale_down(
    old: Sequence[Pod], new: Sequence[Pod], replicas: int, max_unavailable: int, now: float
) -> list[Pod]:
    """The old pods to delete now, by the Deployment controller's rule
    (reconcileOldReplicaSets): never below replicas - maxUnavailable available pods,
    counting the new pods that are not available yet as unavailable; unhealthy old pods
    first, then available ones."""
    min_available = replicas - max_unavailable
    new_unavailable = sum(not p.available(now) for p in new)
    budget = len(old) + len(new) - min_available - new_unavailable
    if budget <= 0:
        return []
    unhealthy = [p for p in old if not p.available(now)][:budget]
    budget -= len(unhealthy)
    available = sum(p.available(now) for p in [*old, *new])
    healthy = [p for p in old if p.available(now)]
    return [*unhealthy, *healthy[: max(0, min(budget, available - min_available))]]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_problems(
    pod: str, text: str, answered_ids: set[str]
) -> tuple[list[str], int, int, set[str]]:
    """(problems, lines, traced access lines, request ids seen with the right trace id)."""
    problems: list[str] = []
    lines = traced = 0
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):  # JSON Lines end at "\n" only
        if not line.strip():
            continue
        lines += 1
        record = parse_json_line(line)
        if record is None:
            problems.append(f"{pod} line {number} is not a JSON object: {line[:200]}")
            continue
        request_id = str(record.get("request_id") or "")
        if not request_id.startswith(REQUEST_ID_PREFIX + "-"):
            continue
        expected, _ = trace_ids(request_id)
        if record.get("trace_id") != expected:
            problems.append(
                f"{pod}: {record.get('message')} of {request_id} has trace_id "
                f"{record.get('trace_id')!r}, sent {expected}"
            )
        elif record.get("message") == "request_completed":
            traced += 1
            seen.add(request_id)
    return problems[:20], lines, traced, seen & answered_ids if answered_ids else seen


async def run_chart_drill(
    s: ChartSettings, load: LoadConfig, *, warmup_s: float = 5.0, settle_s: float = 5.0
) -> ChartOutcome:
    workdir = Path(tempfile.mkdtemp(prefix="fastapi-app-drill-chart-"))
    drill = ChartDrill(s, workdir)
    load = LoadConfig(
        url=drill.url, rate=load.rate, duration_s=load.duration_s,
        kinds=load.kinds, mix=load.mix, max_duration_s=load.max_duration_s,
        seed=load.seed, request_id_prefix=REQUEST_ID_PREFIX,
    )  # fmt: skip
    logs: dict[str, str] = {}
    try:
        try:
            await drill.start()
            outcome = await run_drill(
                load, drill.rollout, warmup_s=warmup_s, settle_s=settle_s,
                timeline=drill.timeline,
            )  # fmt: skip
            for pod in drill.all_pods:
                if pod.started:
                    logs[pod.name] = await pod.logs()
        finally:
            await drill.stop()
    except BaseException as exc:
        exc.add_note(f"drill run folder kept for inspection: {workdir}")
        raise
    for name, text in logs.items():
        (workdir / f"{name}.log").write_text(text)
    answered = {
        f"{REQUEST_ID_PREFIX}-{r.index}" for r in outcome.results if r.ok and r.kind != "health"
    }
    problems = list(outcome.problems)
    total_lines = traced = 0
    seen: set[str] = set()
    for name, text in logs.items():
        found, lines, count, ids = log_problems(name, text, answered)
        problems += found
        total_lines += lines
        traced += count
        seen |= ids
    missing = answered - seen
    if missing:
        problems.append(
            f"{len(missing)} answered requests have no access line with their trace id, "
            f"e.g. {sorted(missing)[:3]}"
        )
    failed = failures_in_log(drill.haproxy.log_lines(), "http")
    if not s.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return ChartOutcome(
        summary=outcome.summary,
        results=outcome.results,
        pods=drill.pods["a"],
        problems=problems,
        haproxy_failures={
            f"{f.server} {f.status} {f.termination}": c for f, c in failed.most_common()
        },
        plan=drill.plan,
        endpoint_lag_s=drill.endpoint_lag_s,
        log_lines=total_lines,
        traced_requests=traced,
        workdir=str(workdir) if s.keep else "",
        notes=drill.plan.notes,
    )
