"""Idle connections to the metrics port cannot exhaust the Gunicorn master: with 600 of them
held open, the master keeps at most 64 threads, grows by at most 30 MiB and still answers a
scrape within 15 s (prometheus_client's own server went from 2 to 602 threads here, and
800 connections took it to 322 MB). The real Gunicorn server."""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.server import metrics_listener
from tests.support import missing
from tools.testbed.servers import ServiceProcess
from tools.testbed.support import wait_for

pytestmark = pytest.mark.integration
IDLE = 600
MAX_THREADS = 64
MAX_GROWTH_KIB = 30 * 1024
SCRAPE_WITHIN_S = 15


@pytest.fixture
def service() -> Iterator[ServiceProcess]:
    process = ServiceProcess(env={"WEB_CONCURRENCY": "1"})
    process.start()
    yield process
    process.stop()


def master_status(pid: int) -> tuple[int, int]:
    """Threads and resident memory (KiB) of the process, from /proc/<pid>/status."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def enough_file_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        missing(f"RLIMIT_NOFILE hard limit of at least {needed} (it is {hard}; ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_idle_connections_cannot_exhaust_the_master(service: ServiceProcess) -> None:
    assert service.process is not None
    master = service.process.pid
    enough_file_descriptors(IDLE + 256)
    assert httpx.get(service.metrics_url, timeout=10).status_code == 200  # warm
    threads_before, rss_before = master_status(master)
    fds_before = open_fds(master)

    port = int(service.env["METRICS_PORT"])
    idle = []
    try:
        for _ in range(IDLE):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # The master holds no more than its cap of them (it closes the oldest).
        wait_for(
            lambda: open_fds(master) <= fds_before + metrics_listener.MAX_CONNECTIONS,
            30,
            what="the master holding at most MAX_CONNECTIONS connections",
        )
        started = time.monotonic()
        scrape = httpx.get(service.metrics_url, timeout=SCRAPE_WITHIN_S)
        took = time.monotonic() - started
        threads, rss = master_status(master)
    finally:
        for sock in idle:
            sock.close()

    assert scrape.status_code == 200
    assert "api_build_info" in scrape.text
    assert took < SCRAPE_WITHIN_S
    assert threads <= MAX_THREADS, (threads_before, threads)
    assert rss - rss_before <= MAX_GROWTH_KIB, (rss_before, rss)
    print(
        f"threads {threads_before} -> {threads}, RSS {rss_before} -> {rss} KiB, "
        f"scrape {took * 1000:.0f} ms"
    )
