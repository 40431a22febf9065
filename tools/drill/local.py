"""The local rolling-update drill: N replicas behind HAProxy, each replaced the Kubernetes way.

For each old replica, like a Deployment with maxSurge 1 and maxUnavailable 0:
  1. start the new replica, wait until it answers /health/ready, put it into rotation and
     wait until HAProxy's own health check reports it UP;
  2. delete the old one (t=0): it leaves the rotation a lag later (endpoints and kube-proxy
     update asynchronously; HAProxy "drain" = no new requests, like an endpoint removal),
     while the preStop wait runs from t=0. The lags cycle through `endpoint_lags_s`; the
     default (1, 2, 3.5 s with a 3 s preStop and a 1 s shutdown delay) makes the last
     replica receive requests after its SIGTERM, as a slow endpoint update does, so the
     drill needs the preStop wait AND a worker that keeps serving during the delay;
  3. SIGTERM at t=preStop; wait for the exit until t=terminationGracePeriodSeconds, then
     SIGKILL the whole process group.
The control run does the same with the protections off: the stock UvicornWorker, no
preStop wait, no shutdown delay. Its SIGTERM then lands before the rotation change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import socket
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools import REPO_ROOT
from tools.drill.haproxy import (
    HAProxyProcess,
    HAProxySettings,
    ProxyMode,
    ServerSlot,
    failures_in_log,
)
from tools.drill.load import LoadConfig, run_drill
from tools.drill.replica import SERVICE_COMMAND, Replica, ReplicaReport
from tools.drill.results import RequestResult, Summary, Timeline

STOCK_WORKER_ARGS = ("-k", "uvicorn_worker.UvicornWorker")
CLEANUP_MARGIN_S = 5.0  # C in the timeline: lifespan clean-up budget plus margin
OLD_VERSION, NEW_VERSION = "old", "new"  # APP_VERSION of the replaced and the new replicas


@dataclass
class LocalSettings:
    replicas: int = 3
    workers: int = 2  # WEB_CONCURRENCY of each replica
    prestop_s: float = 3.0
    shutdown_delay_s: float = 1.0
    grace_s: float = 10.0  # GRACE_PERIOD_SECONDS
    termination_grace_s: float | None = None  # default: prestop + grace + cleanup margin
    endpoint_lags_s: tuple[float, ...] = (1.0, 2.0, 3.5)  # one per replacement, cycled
    control: bool = False  # all protections off (implies stock_worker, no preStop, no delay)
    stock_worker: bool = False  # only the worker class off: see what the worker adds
    proxy_mode: ProxyMode = "http"
    database_url: str = ""  # default: a SQLite file in the run folder, shared by the replicas
    check_inter_ms: int = 1000
    check_fall: int = 2
    check_rise: int = 1
    ready_timeout_s: float = 60.0
    haproxy_bin: str = "haproxy"
    command: tuple[str, ...] = SERVICE_COMMAND
    cwd: Path = REPO_ROOT
    extra_env: dict[str, str] = field(default_factory=dict)
    keep_dir: bool = False

    def __post_init__(self) -> None:
        if self.control:
            self.stock_worker = True
            self.prestop_s = 0.0
            self.shutdown_delay_s = 0.0
        if not 1 <= self.replicas <= 10:
            raise ValueError("replicas must be between 1 and 10")
        if not self.endpoint_lags_s:
            raise ValueError("endpoint lags must not be empty")
        if min(self.prestop_s, self.shutdown_delay_s, self.grace_s, *self.endpoint_lags_s) < 0:
            raise ValueError("times must not be negative")

    def endpoint_lag(self, replacement: int) -> float:
        return self.endpoint_lags_s[replacement % len(self.endpoint_lags_s)]

    @property
    def termination_grace(self) -> float:
        if self.termination_grace_s is not None:
            return self.termination_grace_s
        return self.prestop_s + self.grace_s + CLEANUP_MARGIN_S

    def replica_env(self, workdir: Path) -> dict[str, str]:
        return {
            "WEB_CONCURRENCY": str(self.workers),
            "GRACE_PERIOD_SECONDS": f"{self.grace_s:g}",
            "SHUTDOWN_DELAY_SECONDS": f"{self.shutdown_delay_s:g}",
            "DATABASE_URL": self.database_url or f"sqlite:///{workdir / 'drill.db'}",
            "LOG_LEVEL": "info",
            "DEMO_ROUTES": "true",  # the load's /api/slow and /api/long-task
            **self.extra_env,
        }

    def replica_command(self) -> tuple[str, ...]:
        return self.command + (STOCK_WORKER_ARGS if self.stock_worker else ())


@dataclass
class LocalOutcome:
    summary: Summary
    replicas: list[ReplicaReport]
    problems: list[str]
    haproxy_failures: dict[str, int]  # "server status termination" -> count
    workdir: str
    results: list[RequestResult] = field(default_factory=list)  # every request, for pictures


def create_sqlite_database(path: Path) -> None:
    """An empty SQLite file in WAL mode (a property of the file, so every replica gets it).

    With the default rollback journal, readers and writers of 2N processes lock each other
    out and a busy machine turns lock waits into 503s that have nothing to do with shutdown.
    """
    with sqlite3.connect(path) as db:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"could not put {path} in WAL mode (got {mode!r})")


def allocate_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is handed out twice)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


class LocalDrill:
    def __init__(self, settings: LocalSettings, workdir: Path) -> None:
        self.s = settings
        self.workdir = workdir
        n = settings.replicas
        # The frontend, each replica's API port and each replica's METRICS_PORT.
        ports = allocate_ports(4 * n + 1)
        self.frontend_port = ports[0]
        self.url = f"http://127.0.0.1:{self.frontend_port}"
        env = settings.replica_env(workdir)
        self.replicas = [
            Replica(
                name=f"r{i + 1}",
                port=ports[1 + i],
                # The first n replicas run the old version, their replacements the new one,
                # so the report shows the traffic move (X-App-Version of every response).
                env={
                    **env,
                    "APP_VERSION": OLD_VERSION if i < n else NEW_VERSION,
                    "METRICS_PORT": str(ports[1 + 2 * n + i]),
                },
                log_path=workdir / f"r{i + 1}.log",
                command=settings.replica_command(),
                cwd=settings.cwd,
            )
            for i in range(2 * n)
        ]
        self.haproxy = HAProxyProcess(
            settings.haproxy_bin,
            HAProxySettings(
                frontend_port=self.frontend_port,
                socket_path=workdir / "haproxy.sock",
                servers=tuple(
                    ServerSlot(r.name, r.port, i < n) for i, r in enumerate(self.replicas)
                ),
                mode=settings.proxy_mode,
                check_inter_ms=settings.check_inter_ms,
                check_fall=settings.check_fall,
                check_rise=settings.check_rise,
            ),
            workdir,
        )

    async def start(self) -> None:
        if not self.s.database_url:
            create_sqlite_database(self.workdir / "drill.db")
        await self.haproxy.start()
        first = self.replicas[: self.s.replicas]
        for replica in first:
            await replica.start()
        for replica in first:
            await replica.wait_ready(self.s.ready_timeout_s)
        for replica in first:
            await self.haproxy.api.wait_status(replica.name, "UP", self.s.ready_timeout_s)

    async def stop(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.replicas))
        await self.haproxy.stop()

    async def rollout(self, timeline: Timeline) -> list[str]:
        problems: list[str] = []
        n = self.s.replicas
        for i, (old, new) in enumerate(zip(self.replicas[:n], self.replicas[n:], strict=True)):
            problems += await self.replace(old, new, self.s.endpoint_lag(i), timeline)
        return problems

    async def replace(
        self, old: Replica, new: Replica, endpoint_lag_s: float, timeline: Timeline
    ) -> list[str]:
        s = self.s
        api = self.haproxy.api
        timeline.record("replica_starting", new.name, port=new.port)
        await new.start()
        await new.wait_ready(s.ready_timeout_s)
        timeline.record("replica_ready", new.name)
        await api.set_state(new.name, "ready")
        await api.wait_status(new.name, "UP", s.ready_timeout_s)
        timeline.record("in_rotation", new.name)

        report = old.report
        report.replaced_by = new.name
        report.deleted_at_s = timeline.record("deleted", old.name, lag_s=endpoint_lag_s).t_s
        deleted = asyncio.get_running_loop().time()

        async def leave_rotation() -> None:
            await asyncio.sleep(endpoint_lag_s)
            await api.set_state(old.name, "drain")
            report.rotation_out_at_s = timeline.record("rotation_out", old.name).t_s

        rotation = asyncio.create_task(leave_rotation())
        await asyncio.sleep(s.prestop_s)
        old.signal(signal.SIGTERM)
        report.sigterm_at_s = timeline.record("sigterm", old.name).t_s
        remaining = deleted + s.termination_grace - asyncio.get_running_loop().time()
        code = await old.wait_exit(remaining)
        if code is None:
            old.kill_group()
            report.sigkill = True
            timeline.record("sigkill", old.name)
            code = await old.wait_exit(10.0)
        else:
            old.kill_group()  # a worker the master left behind would keep the port busy
        report.exit_code = code
        report.exited_at_s = timeline.record("exited", old.name, code=code).t_s
        report.exit_after_sigterm_s = round(report.exited_at_s - report.sigterm_at_s, 3)
        await rotation
        await api.set_state(old.name, "maint")

        problems = []
        if report.sigkill:
            problems.append(
                f"{old.name} was still running after {s.termination_grace:g} s: SIGKILL"
            )
        if code != 0 and not s.control:
            problems.append(f"{old.name} exited with code {code}")
        return problems


async def run_local(
    settings: LocalSettings,
    load: LoadConfig,
    *,
    warmup_s: float = 3.0,
    settle_s: float = 3.0,
) -> LocalOutcome:
    """Start HAProxy and the replicas, run the load (its URL is replaced by HAProxy's) with
    the rollout beside it, and clean up. The run folder is kept on error or when asked."""
    workdir = Path(tempfile.mkdtemp(prefix="fastapi-app-drill-"))
    drill = LocalDrill(settings, workdir)
    load = dataclasses.replace(load, url=drill.url)
    try:
        try:
            await drill.start()
            outcome = await run_drill(load, drill.rollout, warmup_s=warmup_s, settle_s=settle_s)
        finally:
            await drill.stop()
    except BaseException as exc:
        exc.add_note(f"drill run folder kept for inspection: {workdir}")
        raise
    failed = failures_in_log(drill.haproxy.log_lines(), settings.proxy_mode)
    if not settings.keep_dir:
        shutil.rmtree(workdir, ignore_errors=True)
    return LocalOutcome(
        summary=outcome.summary,
        replicas=[r.report for r in drill.replicas[: settings.replicas]],
        problems=outcome.problems,
        haproxy_failures={
            f"{f.server} {f.status} {f.termination}": n for f, n in failed.most_common()
        },
        workdir=str(workdir) if settings.keep_dir else "",
        results=outcome.results,
    )
