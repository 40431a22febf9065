"""One replica of the service: the real Gunicorn command as a child process, like a pod.

It runs in its own session (process group), so a final SIGKILL reaches the master and its
workers together, as the kubelet's does for a container.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools import REPO_ROOT
from tools.drill import http


def gunicorn_path() -> str:
    """The gunicorn of the environment running the drill (make's $(BIN)), else .venv's."""
    beside = Path(sys.executable).parent / "gunicorn"
    return str(beside if beside.exists() else REPO_ROOT / ".venv/bin/gunicorn")


SERVICE_COMMAND = (gunicorn_path(), "-c", "python:service.gunicorn_conf", "service.main:app")


@dataclass
class ReplicaReport:
    """When each step of a replica's replacement happened (seconds on the drill's timeline)."""

    name: str
    port: int
    replaced_by: str = ""
    deleted_at_s: float | None = None  # the rollout decided to remove it (pod deletion)
    rotation_out_at_s: float | None = None  # HAProxy stopped routing new requests to it
    sigterm_at_s: float | None = None
    exited_at_s: float | None = None
    exit_after_sigterm_s: float | None = None
    exit_code: int | None = None  # negative: killed by that signal
    sigkill: bool = False
    log_path: str = ""


@dataclass
class Replica:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    command: tuple[str, ...] = SERVICE_COMMAND
    cwd: Path = REPO_ROOT
    report: ReplicaReport = field(init=False)
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.report = ReplicaReport(self.name, self.port, log_path=str(self.log_path))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        env = {**os.environ, **self.env, "PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=self.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    async def is_ready(self, path: str = "/health/ready") -> bool:
        try:
            conn = await http.connect("127.0.0.1", self.port, 1.0)
        except OSError:
            return False
        try:
            data = http.render_request("GET", path, f"127.0.0.1:{self.port}")
            return (await http.request(conn, data, "GET", 2.0)).status == 200
        except Exception:  # any failure to answer 200 means "not ready yet"
            return False
        finally:
            conn.close()

    async def wait_ready(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited with {self.exit_code()}: {self.log_tail()}")
            if await self.is_ready():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout_s} s: {self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(sig)

    def kill_group(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    async def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code, or None if still running after timeout_s."""
        if self._proc is None:
            return None
        try:
            return await asyncio.wait_for(self._proc.wait(), max(0.0, timeout_s))
        except TimeoutError:
            return None

    def exit_code(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Clean-up at the end of a drill: SIGTERM, then SIGKILL to the group if it lingers."""
        if self.running:
            self.signal(signal.SIGTERM)
            if await self.wait_exit(timeout_s) is None:
                self.kill_group()
                await self.wait_exit(5.0)
        self.kill_group()  # stray workers, if the master died first
