# Usage: gunicorn -c python:service.gunicorn_conf service.main:app
"""Gunicorn settings, derived from the same validated environment as the app.

Settings are validated here, in the master, so a bad value stops the server with one
JSON line on stderr and a non-zero exit (validated in a worker, it would make Gunicorn
respawn workers forever)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from service.config import SettingsError, get_settings
from service.server import metrics_listener
from service.server.http_limits import (
    HEADER_TIMEOUT_SECONDS,
    LIMIT_REQUEST_FIELD_SIZE,
    LIMIT_REQUEST_FIELDS,
    LIMIT_REQUEST_LINE,
    MAX_REQUEST_HEAD_BYTES,
    BoundedHttpToolsProtocol,
)
from service.telemetry.logs import get_logger, logging_config, startup_error_line

__all__ = ["HEADER_TIMEOUT_SECONDS", "MAX_REQUEST_HEAD_BYTES"]

try:
    settings = get_settings()
except SettingsError as exc:
    sys.stderr.write(startup_error_line(str(exc)) + "\n")
    sys.exit(1)

# After the drain (at most GRACE_PERIOD_SECONDS) and the cleanup (at most
# SHUTDOWN_CLEANUP_SECONDS): cancelling requests still running (0.5 s) and the exit.
MARGIN_SECONDS = 2


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the container's CPU quota (cgroup v2, then v1), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu/cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def default_workers() -> int:
    """One async worker per CPU the container may use (not the host's CPU count)."""
    limit = cgroup_cpu_limit()
    available = len(os.sched_getaffinity(0))
    return max(1, min(available, math.ceil(limit) if limit else available))


# The API on every interface; the admin routes on a loopback-only listener (see config).
bind = [f"0.0.0.0:{settings.port}"]
if settings.admin_token is not None:
    bind.append(f"127.0.0.1:{settings.admin_port}")
workers = settings.web_concurrency or default_workers()
# Drains before closing its listener; see service/server/worker.py.
worker_class = "service.server.worker.GracefulUvicornWorker"
forwarded_allow_ips = settings.forwarded_allow_ips
# Heartbeat: a worker whose event loop is blocked this long (it stops notifying the
# master) is killed and replaced. It is not a per-request timeout: an async worker
# serves many requests at once, and /api/long-task may legitimately run for minutes.
timeout = 30
# uvicorn's timeout_keep_alive: an idle kept-alive connection is closed this many seconds
# after its last response; clients (and proxies: keep their idle timeout below it, or
# retry) must expect it.
keepalive = 5
graceful_timeout = (
    math.ceil(settings.grace_period_seconds)
    + math.ceil(settings.shutdown_cleanup_seconds)
    + MARGIN_SECONDS
)
# -- Request heads: uvicorn ignores Gunicorn's limit_request_* settings, so every worker
# parses with service.server.http_limits.BoundedHttpToolsProtocol (installed by post_worker_init),
# which enforces these numbers and HEADER_TIMEOUT_SECONDS.
limit_request_line = LIMIT_REQUEST_LINE
limit_request_fields = LIMIT_REQUEST_FIELDS
limit_request_field_size = LIMIT_REQUEST_FIELD_SIZE
control_socket_disable = True
# Heartbeat files on tmpfs (RAM), not the disk; /tmp when /dev/shm is not writable.
SHM = "/dev/shm"  # noqa: S108 - a per-worker heartbeat file, nothing secret
worker_tmp_dir = SHM if os.access(SHM, os.W_OK) else None
accesslog = None
errorlog = "-"
loglevel = settings.log_level
logconfig_dict = logging_config(settings.service_name, settings.log_level)
proc_name = settings.service_name


# The workers' metric files (prometheus_client's multiprocess mode): PROMETHEUS_MULTIPROC_DIR
# when set (its *.db files are removed at start: give this server its own), else a directory
# of this API port under /tmp, the container's writable tmpfs. See metrics_listener.py.
metrics_dir_owned = not os.environ.get(metrics_listener.MULTIPROC_ENV)
metrics_dir = Path(
    os.environ.get(metrics_listener.MULTIPROC_ENV)
    or metrics_listener.default_directory(settings.port)
)


def on_starting(server: Any) -> None:
    """SIGINT (Ctrl-C) drains like SIGTERM instead of Gunicorn's quick shutdown; a second
    SIGINT during the drain still forces the quick one. The metrics directory is set up
    before the first fork, so every worker inherits it."""
    server.handle_int = server.handle_term
    if settings.metrics_on:
        metrics_listener.prepare(metrics_dir)
    if settings.faults_on:  # one line for the server, not one per worker
        get_logger("service.faults").warning(
            "fault_injection_on",
            error_ratio=settings.fault_error_ratio,
            delay_ms=settings.fault_delay_ms,
        )


def when_ready(server: Any) -> None:
    """The API listeners are bound: open the metrics listener (a busy port stops the server,
    as a busy PORT does)."""
    if not settings.metrics_on:
        return
    from service.telemetry.metrics import BuildInfo

    build_info = BuildInfo(settings.service_name, settings.app_version, settings.app_revision)
    try:
        metrics_listener.start(settings.metrics_port, build_info, metrics_dir)
    except OSError as exc:
        message = f"METRICS_PORT {settings.metrics_port}: cannot listen ({exc.strerror})"
        sys.stderr.write(startup_error_line(message, settings.service_name) + "\n")
        metrics_listener.remove(metrics_dir, owned=metrics_dir_owned)  # on_exit will not run
        sys.exit(1)
    get_logger("service.metrics").info(
        "metrics_listening", port=settings.metrics_port, directory=str(metrics_dir)
    )


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone (exit, crash or SIGKILL): its live gauges go with it."""
    if settings.metrics_on:
        metrics_listener.worker_exited(worker.pid, metrics_dir)


def on_exit(server: Any) -> None:
    if settings.metrics_on:
        metrics_listener.remove(metrics_dir, owned=metrics_dir_owned)


def post_worker_init(worker: Any) -> None:
    """Every worker parses requests with the bounded protocol (uvicorn's config is built
    in the worker's __init__ and loaded when it starts serving, after this hook)."""
    worker.config.http = BoundedHttpToolsProtocol


def post_fork(server: Any, worker: Any) -> None:
    """A stop signal from now on stops the booting worker (see watch_for_early_stop);
    each worker gets its own TracerProvider (its exporter thread can't survive fork)."""
    watch = getattr(worker, "watch_for_early_stop", None)
    if watch is not None:
        watch(server)
    from service.telemetry.tracing import setup_tracing

    if settings.observability == "full":
        setup_tracing(settings.service_name, settings.lean_otlp_exporter, settings.app_version)
