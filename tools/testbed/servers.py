"""Throwaway PostgreSQL, Redis and Gunicorn processes for the integration suites."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tools.testbed.jsonlines import parse_json_lines
from tools.testbed.support import REPO_ROOT, MissingPrerequisite, free_port, wait_for

GUNICORN_COMMAND = [
    str(REPO_ROOT / ".venv/bin/gunicorn"),
    "-c",
    "python:service.gunicorn_conf",
    "service.main:app",
]


def _postgres_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: run it as the postgres user when we are root."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, on a free port, trust auth."""

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            raise MissingPrerequisite("PostgreSQL server binaries (apt-get install postgresql)")
        self.bin = Path(bindirs[-1])
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "app",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            cwd=self.dir,
            **_postgres_user(),
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://app@127.0.0.1:{self.port}/postgres"

    def migrate(self, cwd: Path = REPO_ROOT) -> None:
        """Migrate the database as a deploy does (the app itself runs no DDL on PostgreSQL)."""
        subprocess.run(
            [sys.executable, "-m", "service.data.migrate"],
            cwd=cwd,
            env={**os.environ, "DATABASE_URL": self.url, "LOG_LEVEL": "warning"},
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.dir}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.dir,
            **_postgres_user(),
        )
        wait_for(self._accepting, 30, what="PostgreSQL to accept connections")

    def _accepting(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut
            self.process.wait(30)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise MissingPrerequisite("redis-server (apt-get install redis-server)")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._accepting, 15, what="Redis to accept connections")

    def _accepting(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.process = None


class ServiceProcess:
    """The real Gunicorn command on a free port; its stdout goes to a file we parse."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        tmp_dir: Path | None = None,
    ) -> None:
        self.port = free_port()
        # Its own metrics port (METRICS_PORT defaults to 9464 for every server).
        self.metrics_port = free_port()
        self.dir = tmp_dir or Path(tempfile.mkdtemp(prefix="svc-test-"))
        self.log_path = self.dir / f"service-{self.port}.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "WEB_CONCURRENCY": "2",
            "DATABASE_URL": f"sqlite:///{self.dir}/app-{self.port}.sqlite3",
            # Tests use /api/slow, /api/long-task, /api/error (off by default; override
            # with DEMO_ROUTES=false to test the default).
            "DEMO_ROUTES": "true",
            **(env or {}),
        }
        self.command = [*GUNICORN_COMMAND, *(extra_args or [])]
        self.cwd = REPO_ROOT  # where `service` is imported from (make bench --before: elsewhere)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env.get('METRICS_PORT', self.metrics_port)}/metrics"

    def start(self, wait: str | None = "/health/live", timeout_s: float = 30) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            try:
                wait_for(lambda: self._answers(wait), timeout_s, what=f"{wait} on {self.url}")
            except BaseException:
                self.stop()  # nobody gets the server to stop it
                raise
        return self

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answers(self, path: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"service exited early:\n{self.output()}")
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """Every line of the output, parsed; fails on the first line that is not JSON."""
        return parse_json_lines(self.output())

    def active_requests(self) -> float:
        """The http_server_active_requests gauge of GET requests, from the metrics port."""
        return active_requests(httpx.get(self.metrics_url, timeout=10).text)

    def wait_in_flight(self, count: int = 1, timeout_s: float = 15) -> None:
        """Until exactly `count` GET requests are inside the app (the metrics gauge)."""
        wait_for(lambda: self.active_requests() == count, timeout_s, what=f"{count} in flight")

    def events(self, message: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("message") == message]

    def wait_for_event(self, message: str, timeout_s: float = 10, **fields: Any) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [
                r for r in self.events(message) if all(r.get(k) == v for k, v in fields.items())
            ]
            return bool(found)

        wait_for(seen, timeout_s, what=f"log event {message} {fields}")
        return found[0]


def active_requests(metrics_text: str) -> float:
    """The GET requests inside the app, from a /metrics answer (0 before the first one)."""
    for line in metrics_text.splitlines():
        if line.startswith('http_server_active_requests{http_request_method="GET"}'):
            return float(line.split()[-1])
    return 0.0


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
