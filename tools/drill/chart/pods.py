"""Pods as Docker containers, with the kubelet's part: probes, preStop, SIGTERM, SIGKILL.

Each pod is `docker run` of the rendered pod spec (tools/drill/chart/spec.py) on a
user-defined network; HAProxy reaches it at its container IP, as kube-proxy reaches a
pod IP. A prober per pod polls the startup probe, then the readiness probe, with the
probe's path, period, timeout and thresholds, and reports Ready changes to whoever
follows them (the EndpointSlice stand-in, with its lag). Deleting a pod does what the
kubelet does: the preStop hook (sleep, or the exec command in the container), then the
image's stop signal, then SIGKILL at terminationGracePeriodSeconds after the deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from tools.drill import http
from tools.drill.chart.spec import PodPlan, Probe
from tools.drill.replica import ReplicaReport
from tools.drill.results import Timeline


@dataclass
class Completed:
    code: int
    out: str


class DockerCLI:
    def __init__(self, binary: str = "docker") -> None:
        self.binary = binary

    async def __call__(self, *args: str, timeout_s: float = 120, check: bool = True) -> Completed:
        proc = await asyncio.create_subprocess_exec(
            self.binary, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise TimeoutError(
                f"docker {' '.join(args[:3])} ...: no answer in {timeout_s} s"
            ) from None
        done = Completed(proc.returncode or 0, out.decode(errors="replace"))
        if check and done.code != 0:
            raise RuntimeError(f"docker {' '.join(args[:4])} ... exited {done.code}: {done.out}")
        return done

    async def ip(self, container: str, network: str) -> str:
        fmt = "{{json .NetworkSettings.Networks}}"
        networks = json.loads((await self("inspect", "-f", fmt, container)).out)
        address = str((networks.get(network) or {}).get("IPAddress") or "")
        if not address:
            raise RuntimeError(f"{container} has no address on network {network}: {networks}")
        return address


async def http_status(host: str, port: int, path: str, timeout_s: float) -> int | None:
    """The status of GET path, or None when there is no answer within timeout_s."""
    try:
        async with asyncio.timeout(timeout_s):
            conn = await http.connect(host, port, timeout_s)
            try:
                data = http.render_request(
                    "GET", path, f"{host}:{port}", {"User-Agent": "kube-probe"}
                )
                return (await http.request(conn, data, "GET", timeout_s)).status
            finally:
                conn.close()
    except Exception:  # no answer in time, refused, reset: a failed probe
        return None


ReadyHook = Callable[["Pod", bool], Coroutine[None, None, None]]


@dataclass
class Pod:
    name: str
    revision: str
    plan: PodPlan
    docker: DockerCLI
    network: str
    timeline: Timeline
    on_ready_change: ReadyHook
    ip: str = ""
    ready: bool = False
    ready_since: float | None = None  # loop time of the last change to Ready
    deleting: bool = False
    started: bool = False
    in_rotation: bool = False  # HAProxy routes new requests to it
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)
    report: ReplicaReport = field(init=False)
    _prober: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        port = self.plan.readiness.port if self.plan.readiness else 0
        self.report = ReplicaReport(self.name, port)

    def available(self, now: float) -> bool:
        """Ready for at least minReadySeconds (the Deployment controller's "available")."""
        return (
            self.ready
            and not self.deleting
            and self.ready_since is not None
            and now - self.ready_since >= self.plan.min_ready_s
        )

    async def start(self) -> None:
        self.timeline.record("replica_starting", self.name, revision=self.revision)
        await self.docker("run", *self.plan.docker_run_args(self.name, self.network))
        self.started = True
        self.ip = await self.docker.ip(self.name, self.network)
        self._prober = asyncio.create_task(self._probe_loop())

    async def _probe_until(self, probe: Probe, want_ready: bool | None) -> None:
        """Poll one probe forever (readiness), or until it succeeds (startup)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(probe.initial_delay_s)
        successes = failures = 0
        while True:
            started = loop.time()
            status = await http_status(self.ip, probe.port, probe.path, probe.timeout_s)
            ok = status is not None and 200 <= status < 400
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if want_ready is None:  # startup probe
                if ok:
                    return
                if failures >= probe.failure_threshold:
                    self.problems.append(
                        f"{self.name}: startup probe {probe.path} failed {failures} times "
                        "(the kubelet would restart the container)"
                    )
                    return
            elif not self.ready and successes >= probe.success_threshold:
                await self._set_ready(True)
            elif self.ready and failures >= probe.failure_threshold:
                await self._set_ready(False)
            await asyncio.sleep(max(0.0, probe.period_s - (loop.time() - started)))

    async def _probe_loop(self) -> None:
        if self.plan.startup is not None:
            await self._probe_until(self.plan.startup, None)
        if self.plan.readiness is None:
            await self._set_ready(True)
            return
        await self._probe_until(self.plan.readiness, True)

    async def _set_ready(self, ready: bool) -> None:
        self.ready = ready
        self.ready_since = asyncio.get_running_loop().time()
        self.timeline.record("replica_ready" if ready else "replica_not_ready", self.name)
        await self.on_ready_change(self, ready)

    async def delete(self, endpoint_removal: Callable[[Pod], Coroutine[None, None, None]]) -> None:
        """The kubelet's termination, from the deletion (t=0) to the exit."""
        loop = asyncio.get_running_loop()
        report = self.report
        report.replaced_by = "new revision"
        self.deleting = True
        deleted = loop.time()
        report.deleted_at_s = self.timeline.record("deleted", self.name).t_s
        removal = asyncio.create_task(endpoint_removal(self))
        hook = self.plan.prestop
        if hook.exec_command:
            remaining = self.plan.termination_grace_s
            done = await self.docker(
                "exec", self.name, *hook.exec_command, timeout_s=remaining, check=False
            )
            if done.code != 0:
                self.problems.append(f"{self.name}: preStop exited {done.code}: {done.out[-300:]}")
        elif hook.sleep_s:
            await asyncio.sleep(hook.sleep_s)
        signal = await self.stop_signal()
        await self.docker("kill", "--signal", signal, self.name, check=False)
        report.sigterm_at_s = self.timeline.record("sigterm", self.name, signal=signal).t_s
        remaining = deleted + self.plan.termination_grace_s - loop.time()
        code = await self.wait_exit(remaining)
        if code is None:
            await self.docker("kill", "--signal", "KILL", self.name, check=False)
            report.sigkill = True
            self.timeline.record("sigkill", self.name)
            code = await self.wait_exit(30)
        self.exit_code = report.exit_code = code
        report.exited_at_s = self.timeline.record("exited", self.name, code=code).t_s
        report.exit_after_sigterm_s = round(report.exited_at_s - report.sigterm_at_s, 3)
        await removal
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober

    async def stop_signal(self) -> str:
        """The image's STOPSIGNAL, which the kubelet (CRI) sends; SIGTERM by default."""
        done = await self.docker("inspect", "-f", "{{.Config.StopSignal}}", self.name, check=False)
        value = done.out.strip()
        return value if done.code == 0 and value and value != "<no value>" else "SIGTERM"

    async def wait_exit(self, timeout_s: float) -> int | None:
        try:
            done = await self.docker("wait", self.name, timeout_s=max(0.1, timeout_s))
        except TimeoutError:
            return None
        return int(done.out.strip().splitlines()[-1])

    async def logs(self) -> str:
        done = await self.docker("logs", self.name, check=False, timeout_s=60)
        return done.out

    async def remove(self) -> None:
        if self._prober is not None and not self._prober.done():
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        if self.started:
            await self.docker("rm", "--force", self.name, check=False)
