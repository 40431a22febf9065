"""/metrics of the real Gunicorn server (4 workers) as a real Prometheus scrapes it: the sum
over the workers is exact, survives a worker's SIGKILL and replacement, and clients cannot
create label values; a dead worker's live gauges disappear."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.server import metrics_listener
from tests.integration.prometheus import PrometheusServer, wait_for_value
from tools.testbed.servers import ServiceProcess
from tools.testbed.support import wait_for

pytestmark = pytest.mark.integration
WORKERS = 4
PING_COUNT = 'sum(http_server_request_duration_seconds_count{http_route="/api/ping"})'


def workers_of(master_pid: int) -> set[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


def replace_workers(service: ServiceProcess, victims: set[int]) -> None:
    """SIGKILL these workers; return once the master has WORKERS workers again, none of
    them a victim, and each replacement has finished its start-up."""
    assert service.process is not None
    master = service.process.pid
    started = len(service.events("startup_complete"))
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: len(workers := workers_of(master)) == WORKERS and not workers & victims,
        60,
        what="replacement workers",
    )
    wait_for(
        lambda: len(service.events("startup_complete")) >= started + len(victims),
        60,
        what="replacement workers' start-up",
    )


def fresh_requests(url: str, count: int) -> None:
    """Each on a new connection, so the kernel hands them to any of the workers."""
    for _ in range(count):
        response = httpx.get(url, headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    """One server for the module (starting 4 workers is the slow part); the test that kills
    every worker runs last."""
    with ServiceProcess(env={"WEB_CONCURRENCY": str(WORKERS), "APP_VERSION": "9.9.9"}) as server:
        server.start(wait="/health/live", timeout_s=60)
        wait_for(
            lambda: len(server.events("startup_complete")) == WORKERS, 60, what="4 workers started"
        )
        yield server


def test_prometheus_sees_exact_sums_across_workers_and_a_worker_death(
    service: ServiceProcess,
) -> None:
    target = f"127.0.0.1:{service.metrics_port}"
    with PrometheusServer([target]) as prometheus:
        wait_for_value(prometheus, 'up{job="app"}', 1)
        assert prometheus.value('api_build_info{version="9.9.9"}') == 1
        started = time.time()

        n = 120
        fresh_requests(f"{service.url}/api/ping", n)
        wait_for_value(prometheus, PING_COUNT, n)

        # Unmatched URLs: counted under the empty route, never as new label values.
        for _ in range(20):
            response = httpx.get(f"{service.url}/random-{uuid.uuid4().hex}", timeout=10)
            assert response.status_code == 404
        wait_for_value(
            prometheus,
            'sum(http_server_request_duration_seconds_count{http_route="",'
            'http_response_status_code="404"})',
            20,
        )
        routes = {
            series["metric"].get("http_route", "")
            for series in prometheus.query(
                "group by (http_route) (http_server_request_duration_seconds_count)"
            )
        }
        assert routes <= {"", "/api/ping", "/health/live"}, routes

        # A worker dies without a word; the master replaces it. Its counts stay.
        assert service.process is not None
        before = workers_of(service.process.pid)
        replace_workers(service, {sorted(before)[0]})
        replaced_at = time.time()
        prometheus.wait_for_scrape_after(replaced_at)
        assert prometheus.value(PING_COUNT) == n

        m = 40
        fresh_requests(f"{service.url}/api/ping", m)
        wait_for_value(prometheus, PING_COUNT, n + m)

        # Never a dip in between: every 1 s step from the first scrape to now.
        steps = prometheus.range_values(PING_COUNT, started, time.time())
        assert steps, "no samples"
        assert all(a <= b for a, b in itertools.pairwise(steps)), steps
        assert steps[-1] <= n + m


def scrape(service: ServiceProcess, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(service.metrics_url, headers=headers, timeout=10)


def test_dead_workers_live_gauges_disappear_and_formats(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.url}/metrics", timeout=10).status_code == 404
    text = scrape(service)
    assert text.headers["content-type"].startswith("text/plain")
    openmetrics = scrape(service, "application/openmetrics-text;version=1.0.0")
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")

    # Requests that stay in flight, on whichever workers took them.
    url = f"{service.url}/api/slow?ms=60000"
    threads = [threading.Thread(target=lambda: _ignore_errors(url), daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    service.wait_in_flight(6, timeout_s=30)

    assert service.process is not None
    replace_workers(service, workers_of(service.process.pid))
    # Without mark_process_dead in child_exit, the dead workers' 6 would stay forever.
    service.wait_in_flight(0, timeout_s=30)


def _ignore_errors(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the worker serving it was killed
        httpx.get(url, timeout=90)


def test_a_busy_metrics_port_stops_the_server() -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with ServiceProcess(env={"METRICS_PORT": str(port)}).start(wait=None) as server:
            assert server.wait(30) != 0
        assert f"METRICS_PORT {port}: cannot listen" in server.output()
        assert not metrics_listener.default_directory(server.port).exists()  # cleaned up
