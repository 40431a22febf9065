"""Graceful shutdown of the real Gunicorn process under real signals."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.logs import SHUTDOWN_EVENTS as E2E_SHUTDOWN_EVENTS
from tools.testbed.servers import PostgresServer, RedisServer, ServiceProcess
from tools.testbed.support import free_port, wait_for

pytestmark = pytest.mark.integration
SHUTDOWN_EVENTS = list(E2E_SHUTDOWN_EVENTS)  # one list for every suite
SHUTDOWN_MESSAGE = "Draining: retry elsewhere."
StartService = Callable[[dict[str, str]], ServiceProcess]


class Background:
    """A request running in a thread, so the test can signal the server meanwhile."""

    def __init__(self, url: str, timeout_s: float = 60) -> None:
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(url, timeout_s), daemon=True)
        self.thread.start()

    def _run(self, url: str, timeout_s: float) -> None:
        try:
            self.response = httpx.get(url, timeout=timeout_s)
        except Exception as exc:
            self.error = exc

    def join(self, timeout_s: float = 60) -> None:
        self.thread.join(timeout_s)


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """Starts a one-worker server; every one it started is stopped after the test, failed
    or not."""
    started: list[ServiceProcess] = []

    def start(env: dict[str, str]) -> ServiceProcess:
        service = ServiceProcess(env={"WEB_CONCURRENCY": "1", **env})
        started.append(service)
        return service.start(wait="/health/ready")

    yield start
    for service in started:
        service.stop()


def in_order(records: list[dict[str, Any]], events: list[str]) -> list[str]:
    seen = [r["message"] for r in records if r["message"] in events]
    return [e for e in seen if e in events]


@pytest.fixture
def backed_service(
    postgres: PostgresServer, redis_server: RedisServer, start_service: StartService
) -> ServiceProcess:
    return start_service(
        {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "GRACE_PERIOD_SECONDS": "20",
            "RETRY_AFTER_SECONDS": "7",
            "SHUTDOWN_MESSAGE": SHUTDOWN_MESSAGE,
        }
    )


def test_sigterm_drains_rejects_and_closes_in_order(backed_service: ServiceProcess) -> None:
    service = backed_service
    long_task = Background(f"{service.url}/api/long-task?seconds=4")
    service.wait_in_flight(1)  # the long request has reached the app
    service.signal(signal.SIGTERM)
    service.wait_for_event("rejecting_new_requests")

    late = httpx.get(f"{service.url}/api/items")
    assert late.status_code == 503
    assert late.headers["retry-after"] == "7"
    assert late.headers["connection"] == "close"
    body = late.json()
    assert body == {
        "detail": SHUTDOWN_MESSAGE,
        "request_id": late.headers["x-request-id"],
        "retry_after": 7,
    }
    assert httpx.get(f"{service.url}/health/ready").status_code == 503
    assert httpx.get(f"{service.url}/health/live").status_code == 200

    long_task.join()
    assert long_task.error is None and long_task.response is not None
    assert long_task.response.status_code == 200
    assert long_task.response.headers["connection"] == "close"
    assert service.wait(30) == 0
    records = service.records()
    order = in_order(records, SHUTDOWN_EVENTS)
    assert order == SHUTDOWN_EVENTS, order
    started = next(r for r in records if r["message"] == "shutdown_started")
    assert started["signal"] == "SIGTERM" and started["in_flight"] == 1
    # A worker's drain is told apart by its pid (the worker's, not the master's).
    pids = {r["pid"] for r in records if r["message"] == "shutdown_started"}
    assert service.process is not None and pids and service.process.pid not in pids
    assert pids == {r["pid"] for r in records if r["message"] == "shutdown_complete"}
    assert not any("SIGKILL" in r.get("detail", "") for r in records)
    # No noise from closing the listener twice (uvloop, then Gunicorn's wrapper).
    assert not any("error_while_closing_socket" in r["message"] for r in records)


def test_idle_server_exits_promptly(start_service: StartService) -> None:
    service = start_service({"GRACE_PERIOD_SECONDS": "30", "SHUTDOWN_DELAY_SECONDS": "1"})
    sent = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.wait(30) == 0
    elapsed = time.monotonic() - sent
    # The delay, then an exit that does not wait for the grace period (about 0.2 s here;
    # a third of G leaves room for a busy machine and still tells the two apart).
    assert 1.0 <= elapsed < 10.0, elapsed


def test_shutdown_delay_keeps_serving_before_rejecting(start_service: StartService) -> None:
    service = start_service({"GRACE_PERIOD_SECONDS": "10", "SHUTDOWN_DELAY_SECONDS": "2"})
    service.signal(signal.SIGTERM)
    service.wait_for_event("shutdown_started")
    during_delay = httpx.get(f"{service.url}/api/ping")
    assert during_delay.status_code == 200
    assert during_delay.headers["connection"] == "close"
    assert httpx.get(f"{service.url}/health/ready").status_code == 503
    service.wait_for_event("rejecting_new_requests", timeout_s=10)
    assert service.wait(30) == 0


def test_request_longer_than_grace_is_cut_and_cleanup_still_runs(
    start_service: StartService,
) -> None:
    service = start_service({"GRACE_PERIOD_SECONDS": "2"})
    long_task = Background(f"{service.url}/api/long-task?seconds=30")
    service.wait_in_flight(1)  # the long request has reached the app
    sent = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.wait(30) == 0
    elapsed = time.monotonic() - sent
    assert elapsed < 2 + 5, elapsed  # grace + cleanup budget: no SIGKILL from Gunicorn
    long_task.join(10)
    assert long_task.response is None or long_task.response.status_code != 200
    messages = [r["message"] for r in service.records()]
    assert "grace_period_exceeded" in messages
    assert "request_cut_by_grace_period" in messages
    assert messages.index("database_closed") > messages.index("grace_period_exceeded")
    assert "shutdown_complete" in messages


def test_sigint_drains_like_sigterm_and_second_signal_changes_nothing(
    start_service: StartService,
) -> None:
    service = start_service({"GRACE_PERIOD_SECONDS": "20"})
    long_task = Background(f"{service.url}/api/long-task?seconds=3")
    service.wait_in_flight(1)  # the long request has reached the app
    service.signal(signal.SIGINT)
    service.wait_for_event("shutdown_started")
    service.signal(signal.SIGTERM)  # a second signal: same drain, same clock
    long_task.join()
    assert long_task.response is not None and long_task.response.status_code == 200
    assert service.wait(30) == 0
    records = service.records()
    starts = [r for r in records if r["message"] == "shutdown_started"]
    # The master turns SIGINT into the same SIGTERM drain for its workers.
    assert any(r.get("detail") == "Handling signal: int" for r in records)
    assert len(starts) == 1
    assert len([r for r in records if r["message"] == "requests_drained"]) == 1


def test_admin_shutdown_needs_the_token_and_the_admin_listener(
    start_service: StartService,
) -> None:
    without = start_service({})
    response = httpx.post(f"{without.url}/admin/shutdown")
    assert response.status_code == 404
    without.stop()

    admin_port = free_port()
    token = "s3cret-admin-token-of-32-characters"
    service = start_service({"ADMIN_TOKEN": token, "ADMIN_PORT": str(admin_port)})
    admin_url = f"http://127.0.0.1:{admin_port}"
    right = {"Authorization": f"Bearer {token}"}
    # The API port (what a Service reaches) never serves the admin route, token or not.
    assert httpx.post(f"{service.url}/admin/shutdown", headers=right).status_code == 404
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        assert httpx.post(f"{admin_url}/admin/shutdown", headers=headers).status_code == 401
    assert httpx.get(f"{service.url}/health/ready").status_code == 200
    assert "shutdown_started" not in [r["message"] for r in service.records()]
    refused = service.events("admin_request_refused")
    assert len(refused) == 3
    assert token not in service.output()

    accepted = httpx.post(f"{admin_url}/admin/shutdown", headers=right)
    assert accepted.status_code == 202
    assert service.wait(30) == 0
    wait_for(lambda: bool(service.events("shutdown_complete")), 5, what="shutdown_complete")


class SilentCollector:
    """An OTLP endpoint that accepts connections and never answers: a span export to it
    hangs until the exporter's own timeout."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.connections.append(self.server.accept()[0])
            except OSError:  # closed
                return

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_collector() -> Iterator[SilentCollector]:
    collector = SilentCollector()
    yield collector
    collector.close()


def test_a_hung_cleanup_step_is_cut_at_shutdown_cleanup_seconds(
    start_service: StartService, silent_collector: SilentCollector
) -> None:
    """The span flush hangs on a collector that never answers (60 s exporter timeout): the
    cleanup is cut at SHUTDOWN_CLEANUP_SECONDS and the worker still exits on its own, before
    Gunicorn's graceful timeout (G + C + 2) would kill it."""
    grace, cleanup = 1, 2
    service = start_service(
        {
            "GRACE_PERIOD_SECONDS": str(grace),
            "SHUTDOWN_CLEANUP_SECONDS": str(cleanup),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{silent_collector.port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "60",
        }
    )
    for _ in range(3):  # spans buffered for the flush
        assert httpx.get(f"{service.url}/api/ping").status_code == 200
    sent = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.wait(30) == 0
    elapsed = time.monotonic() - sent
    assert elapsed < grace + cleanup + 2, elapsed  # Gunicorn's graceful_timeout
    assert silent_collector.connections, "the flush never reached the collector"
    records = service.records()
    messages = [r["message"] for r in records]
    (failed,) = service.events("spans_flush_failed")
    assert failed["error"] == f"cut: SHUTDOWN_CLEANUP_SECONDS ({cleanup} s) spent"
    assert messages.index("database_closed") < messages.index("spans_flush_failed")
    (complete,) = service.events("shutdown_complete")
    # Cut at the deadline, not before it: the drain (nothing in flight) took next to nothing.
    assert complete["elapsed_seconds"] >= cleanup, complete
    assert messages.index("spans_flush_failed") < messages.index("shutdown_complete")
    assert not any("SIGKILL" in r.get("detail", "") for r in records)
