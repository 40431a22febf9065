"""The /metrics listener, run by the Gunicorn master on METRICS_PORT (all interfaces).

Why the master: it is the one process that outlives every worker, so it can sum the workers'
files at every scrape, remove a dead worker's live gauges (`child_exit`), and answer while
all workers are busy, blocked or being replaced. The API port never serves /metrics.

Order matters, and gunicorn_conf's hooks keep it:
1. `prepare` (on_starting, before any fork): PROMETHEUS_MULTIPROC_DIR is set in the
   environment the workers inherit, prometheus_client's value class follows it, and the
   directory is emptied of a previous run's files (a restarted container keeps its /tmp).
2. `start` (when_ready, after the API listeners are bound): a daemon thread serves the
   registry (prometheus_client's own HTTP server: text format, OpenMetrics when the Accept
   header asks for it, gzip when accepted). A busy METRICS_PORT stops the server.
3. `worker_exited` (child_exit): the dead worker's live gauges go; its counters and
   histograms stay, so totals never go down.
The thread only reads the files and writes to its sockets (no logging, no prometheus_client
locks the workers use), so the master's later forks cannot inherit a lock it holds.

Files of dead workers stay until the next start (three of 64 KiB per dead worker); workers
are replaced only when they crash or miss their heartbeat, so they do not pile up.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def default_directory(port: int) -> Path:
    """One directory per API port, so servers side by side (tests, the drill) never share."""
    return Path(tempfile.gettempdir()) / f"fastapi-app-metrics-{port}"


def prepare(directory: Path) -> Path:
    """Create the directory, remove its *.db files, export it to the workers' environment."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus_client picks its value class when first imported, and the master's
    # configuration already imported it (through the access log's module). No value exists in
    # the master yet, so the class is picked again now; the workers inherit it at fork.
    from prometheus_client import values

    if not values.ValueClass._multiprocess:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def start(port: int, build_info: Any, directory: Path) -> Any:
    """Serve the sum of the workers' files and the build info on 0.0.0.0:port."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(build_info)
    server, _thread = start_http_server(port, addr="0.0.0.0", registry=registry)
    return server


def worker_exited(pid: int, directory: Path) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def remove(directory: Path, owned: bool) -> None:
    """At the master's exit: its files go; the directory too when it was the default one."""
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
    if owned:
        with contextlib.suppress(OSError):  # not empty: someone else's files
            directory.rmdir()
