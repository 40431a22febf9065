"""The app container at run time: read-only, non-root, healthy, Gunicorn as PID 1, and a
`docker stop` that lets an in-flight request finish."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.container.conftest import BaseImages, report
from tests.container.dockerutil import Docker, get, wait_http
from tools.testbed.jsonlines import parse_json_lines
from tools.testbed.servers import active_requests
from tools.testbed.support import free_port, wait_for

pytestmark = pytest.mark.container

HARDENED = [
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges:true",
]
SHUTDOWN_EVENTS = [
    "shutdown_started",
    "requests_drained",
    "database_closed",
    "redis_closed",
    "shutdown_complete",
]


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def network(docker: Docker) -> Iterator[str]:
    name = unique("fastapi-app-ct-net")
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


def test_runs_read_only_as_appuser_healthy_with_gunicorn_as_pid_1(
    docker: Docker, app_image: str, pytestconfig: pytest.Config
) -> None:
    name = unique("fastapi-app-ct-run")
    port = free_port()
    started = time.monotonic()
    try:
        docker("run", "-d", "--name", name, *HARDENED, "-p", f"127.0.0.1:{port}:8000", app_image)
        wait_http(f"http://127.0.0.1:{port}/health/live", 60)
        live_after = time.monotonic() - started
        docker.wait_healthy(name, timeout_s=90)
        report(
            pytestconfig,
            f"read-only container live after {live_after:.2f} s, "
            f"healthy (own HEALTHCHECK) after {time.monotonic() - started:.1f} s",
        )

        # No cat or id in the image: its Python reads /proc.
        def read(path: str) -> str:
            code = f"print(open({path!r}).read(), end='')"
            return docker("exec", name, "python", "-c", code).stdout

        cmdline = read("/proc/1/cmdline").rstrip("\0").split("\0")
        assert os.path.basename(cmdline[1]) == "gunicorn", cmdline
        assert cmdline[2:] == ["-c", "python:service.gunicorn_conf", "service.main:app"]
        status = read("/proc/1/status")
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["10001"] * 4
        uid = docker("exec", name, "python", "-c", "import os; print(os.getuid())").stdout
        assert uid.strip() == "10001"

        # Nothing but /tmp is writable.
        probe = docker(
            "exec",
            name,
            "python",
            "-c",
            "import os\n"
            "for p in ('/app/x', '/opt/venv/x', '/x', '/tmp/x'):\n"
            "    try:\n"
            "        open(p, 'w').close(); print(p, 'ok')\n"
            "    except OSError as e:\n"
            "        print(p, type(e).__name__)",
        ).stdout.split("\n")
        results = dict(line.split(" ", 1) for line in probe if line)
        assert results["/tmp/x"] == "ok"
        assert all(v != "ok" for k, v in results.items() if k != "/tmp/x"), results

        state = docker.inspect(name)["State"]
        assert state["Health"]["Log"][-1]["ExitCode"] == 0
        assert get(f"http://127.0.0.1:{port}/health/ready").status_code == 200
    finally:
        docker.remove(name)


def test_docker_stop_lets_the_in_flight_request_finish(
    docker: Docker,
    app_image: str,
    base_images: BaseImages,
    network: str,
    pytestconfig: pytest.Config,
) -> None:
    """SIGTERM during /api/long-task: the request completes with 200, the container exits 0
    well before `docker stop` would SIGKILL it, and the logs are JSON lines that tell the
    shutdown's story."""
    grace_s, task_s, stop_timeout_s = 10, 5, 25
    redis, app = unique("fastapi-app-ct-redis"), unique("fastapi-app-ct-stop")
    port, metrics_port = free_port(), free_port()
    try:
        docker("run", "-d", "--name", redis, "--network", network, base_images.redis)
        docker(
            "run",
            "-d",
            "--name",
            app,
            "--network",
            network,
            *HARDENED,
            "-e",
            f"REDIS_URL=redis://{redis}:6379/0",
            "-e",
            f"GRACE_PERIOD_SECONDS={grace_s}",
            "-e",
            "WEB_CONCURRENCY=2",
            "-e",
            "DEMO_ROUTES=true",
            # No HEALTHCHECK probe in flight: the active-requests gauge counts only ours.
            "--no-healthcheck",
            "-p",
            f"127.0.0.1:{port}:8000",
            "-p",
            f"127.0.0.1:{metrics_port}:9464",
            app_image,
        )
        ready = wait_http(f"http://127.0.0.1:{port}/health/ready", 60).json()
        assert ready["checks"]["redis"]["healthy"] is True

        outcome: dict[str, object] = {}

        def long_task() -> None:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/long-task",
                    params={"seconds": task_s},
                    timeout=stop_timeout_s + 10,
                    trust_env=False,
                )
                outcome["status"] = response.status_code
                outcome["body"] = response.text
            except httpx.HTTPError as exc:
                outcome["error"] = repr(exc)

        sent = time.monotonic()
        client = threading.Thread(target=long_task)
        client.start()
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_for(lambda: active_requests(get(metrics).text) == 1, 15, what="the task in flight")
        started = time.monotonic()
        docker("stop", "-t", str(stop_timeout_s), app, timeout_s=stop_timeout_s + 30)
        stop_s = time.monotonic() - started
        client.join(timeout=30)

        assert outcome.get("status") == 200, outcome
        state = docker.inspect(app)["State"]
        assert state["ExitCode"] == 0, state
        assert not state["OOMKilled"]
        # SIGKILL would come at stop_timeout_s; the drain took about the rest of the task.
        assert stop_s < stop_timeout_s - 2, f"docker stop took {stop_s:.1f} s"
        # The task was sent at `sent`: it cannot end (nor the container exit) before its time.
        ends_s = task_s - (started - sent)
        assert stop_s >= ends_s, f"exited after {stop_s:.1f} s, the task ends after {ends_s:.1f} s"

        logs = docker("logs", app)
        records = parse_json_lines(logs.stdout) + parse_json_lines(logs.stderr)
        messages = [str(record.get("message")) for record in records]
        missing_events = [event for event in SHUTDOWN_EVENTS if event not in messages]
        assert missing_events == [], f"shutdown events not logged: {missing_events}"
        completed = [
            r
            for r in records
            if r.get("message") == "request_completed" and r.get("path") == "/api/long-task"
        ]
        assert completed and completed[0].get("status_code") == 200
        report(pytestconfig, f"docker stop during a {task_s} s request: exit 0 in {stop_s:.1f} s")
    finally:
        docker.remove(app, redis)
