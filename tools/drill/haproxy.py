"""HAProxy in front of the replicas: its configuration, its process, and its runtime API.

The configuration is rendered into the drill's temporary folder at run time. Retries and
redispatch are off, so a request that reaches a dead or closing server fails visibly instead
of being replayed elsewhere. Replicas are taken out of rotation through the runtime API on a
unix socket, the way an endpoint removal takes a pod out of a Service.
"""

from __future__ import annotations

import asyncio
import csv
import io
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ProxyMode = Literal["http", "tcp"]
BACKEND = "replicas"
LOG_TAG = "drill-log"


@dataclass(frozen=True)
class ServerSlot:
    name: str
    port: int
    enabled: bool  # disabled slots start in maintenance and are enabled when their replica is
    host: str = "127.0.0.1"  # the runtime API can change it (set server ... addr)


@dataclass(frozen=True)
class HAProxySettings:
    frontend_port: int
    socket_path: Path
    servers: tuple[ServerSlot, ...]
    mode: ProxyMode = "http"
    health_path: str = "/health/ready"
    check_inter_ms: int = 1000
    check_fall: int = 2
    check_rise: int = 1
    timeout_connect_s: int = 2
    timeout_idle_s: int = 60  # client/server inactivity; above the longest request
    # Off: membership only through the runtime API, as kube-proxy follows EndpointSlices
    # without checking the pods itself (tools/drill/chart).
    health_checks: bool = True


def render_config(s: HAProxySettings) -> str:
    """The haproxy.cfg text for these settings."""
    if s.mode == "http":
        log_format = f"{LOG_TAG} %Ts.%ms %b/%s %ST %tsc %Ta %{{+Q}}r"
        mode_lines = [
            "    option http-keep-alive",
            f"    timeout http-keep-alive {s.timeout_idle_s}s",
            "    timeout http-request 10s",
        ]
        backend_lines = ["    http-response set-header X-Drill-Server %s"]
    else:
        log_format = f"{LOG_TAG} %Ts.%ms %b/%s - %ts %Tt -"
        mode_lines = []
        backend_lines = []
    server_lines = [
        f"    server {srv.name} {srv.host}:{srv.port}{' check' if s.health_checks else ''}"
        f"{'' if srv.enabled else ' disabled'}"
        for srv in s.servers
    ]
    lines = [
        "# Rendered by tools/drill for one run; not a production configuration.",
        "global",
        "    maxconn 4096",
        "    nbthread 1",
        f"    stats socket {s.socket_path} mode 600 level admin",
        "    log stdout format raw local0 info",
        "",
        "defaults",
        f"    mode {s.mode}",
        "    log global",
        f'    log-format "{log_format}"',
        "    option log-health-checks",
        "    # A failed request must count as failed: no retry, no redispatch to another server.",
        "    retries 0",
        f"    timeout connect {s.timeout_connect_s}s",
        f"    timeout client {s.timeout_idle_s}s",
        f"    timeout server {s.timeout_idle_s}s",
        "    timeout check 1s",
        *mode_lines,
        "",
        "frontend drill",
        f"    bind 127.0.0.1:{s.frontend_port}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        "    option httpchk",
        f"    http-check send meth GET uri {s.health_path} ver HTTP/1.1 hdr Host drill-check",
        "    http-check expect status 200",
        f"    default-server inter {s.check_inter_ms}ms fall {s.check_fall} rise {s.check_rise}",
        *backend_lines,
        *server_lines,
        "",
    ]
    return "\n".join(lines)


def parse_stat_csv(text: str) -> dict[str, dict[str, str]]:
    """`show stat` output -> {server name: row} for the backend's servers."""
    text = text.lstrip()
    if text.startswith("# "):
        text = text[2:]
    rows: dict[str, dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("pxname") == BACKEND and row.get("svname") not in ("BACKEND", "FRONTEND"):
            rows[row["svname"]] = dict(row)
    return rows


def server_status(row: dict[str, str]) -> str:
    """First word of the status column: UP, DOWN, MAINT, DRAIN, NOLB (a "UP 1/2" -> UP)."""
    return (row.get("status") or "").split(" ")[0]


@dataclass(frozen=True)
class LogFailure:
    server: str
    status: str
    termination: str


def failures_in_log(lines: Iterable[str], mode: ProxyMode = "http") -> Counter[LogFailure]:
    """Requests HAProxy logged as failed: a non-2xx status, or an abnormal termination state.

    The termination state's first two letters say who ended the session and when (SC: the
    server refused or reset the connection; SH: it closed before sending headers; ...).
    """
    failed: Counter[LogFailure] = Counter()
    for line in lines:
        fields = line.split()  # tag, accept time, backend/server, status, termination, ...
        if len(fields) < 6 or fields[0] != LOG_TAG:
            continue
        server = fields[2].split("/", 1)[-1]
        status = fields[3]
        termination = fields[4]
        bad_status = mode == "http" and not status.startswith("2")
        if bad_status or termination[:2] != "--":
            failed[LogFailure(server, status, termination[:2])] += 1
    return failed


class RuntimeAPI:
    """HAProxy's runtime API over its unix stats socket (one command per connection)."""

    def __init__(self, socket_path: Path, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    async def command(self, line: str) -> str:
        async with asyncio.timeout(self.timeout_s):
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
            try:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                return (await reader.read()).decode(errors="replace")
            finally:
                writer.close()

    async def set_state(self, server: str, state: Literal["ready", "drain", "maint"]) -> None:
        answer = await self.command(f"set server {BACKEND}/{server} state {state}")
        if answer.strip():
            raise RuntimeError(f"haproxy refused 'set server {server} state {state}': {answer!r}")

    async def statuses(self) -> dict[str, str]:
        rows = parse_stat_csv(await self.command("show stat"))
        return {name: server_status(row) for name, row in rows.items()}

    async def wait_status(self, server: str, wanted: str, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last = "?"
        while loop.time() < deadline:
            last = (await self.statuses()).get(server, "?")
            if last == wanted:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"haproxy: {server} still {last}, not {wanted}, after {timeout_s} s")


class HAProxyProcess:
    """haproxy in the foreground (-db), its log in the run folder."""

    def __init__(self, binary: str, settings: HAProxySettings, workdir: Path) -> None:
        self.binary = binary
        self.settings = settings
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.api = RuntimeAPI(settings.socket_path)
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 10.0) -> None:
        self.config_path.write_text(render_config(self.settings))
        check = await asyncio.create_subprocess_exec(
            self.binary, "-c", "-q", "-f", str(self.config_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(check.communicate(), timeout_s)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected its configuration: {out.decode()[-2000:]}")
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "-db", "-f", str(self.config_path),
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                raise RuntimeError(f"haproxy exited with {self._proc.returncode}: see its log")
            try:
                await self.api.statuses()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError("haproxy did not open its runtime API socket in time")

    def log_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()

    async def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
