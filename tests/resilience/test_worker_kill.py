"""SIGKILL of one worker under load: Gunicorn replaces it, readiness recovers, and no
request on a connection served by another worker fails."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from tests.resilience.harness import checks_timed_out, children, socket_owner
from tools.testbed.servers import ServiceProcess
from tools.testbed.support import wait_for

pytestmark = pytest.mark.resilience
CLIENTS = 8
MAX_CLIENTS = 24
MIN_PER_WORKER = 3
WORKERS = 2


@dataclass
class Connection:
    """One keep-alive client connection and the worker that accepted it."""

    local_port: int
    owner: int | None = None
    sent: int = 0
    failed: list[str] = field(default_factory=list)


class Client(threading.Thread):
    """Requests over one keep-alive connection at a time; reconnects after a failure."""

    def __init__(self, port: int, stop: threading.Event, deadline_s: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = stop
        self.deadline = time.monotonic() + deadline_s
        self.connections: list[Connection] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.connect()
            except OSError:
                return  # the service is gone (the test is over or failed): stop quietly
            assert conn.sock is not None
            current = Connection(conn.sock.getsockname()[1])
            with self.lock:
                self.connections.append(current)
            for _ in range(10_000):
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    break
                current.sent += 1
                try:
                    conn.request("GET", "/api/ping")
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        current.failed.append(f"status {response.status}")
                except (OSError, http.client.HTTPException) as exc:
                    current.failed.append(f"{type(exc).__name__}: {exc}")
                    break
                time.sleep(0.005)
            conn.close()


def test_killed_worker_is_replaced_and_other_workers_lose_nothing() -> None:
    service = ServiceProcess(env={"WEB_CONCURRENCY": str(WORKERS)}).start(wait="/health/ready")
    assert service.process is not None
    master = service.process.pid
    try:
        wait_for(lambda: len(children(master)) == WORKERS, 10, what="all workers")
        workers = children(master)
        stop = threading.Event()
        clients: list[Client] = []
        # Add clients until each worker serves at least MIN_PER_WORKER connections.
        while len(clients) < MAX_CLIENTS:
            clients.append(Client(service.port, stop, deadline_s=40))
            clients[-1].start()
            time.sleep(0.1)
            connections = [c for client in clients for c in client.connections]
            for conn in connections:
                conn.owner = conn.owner or socket_owner(service.port, conn.local_port, workers)
            owners = Counter(c.owner for c in connections)
            if len(clients) >= CLIENTS and min(owners[w] for w in workers) >= MIN_PER_WORKER:
                break
        assert set(owners) <= set(workers) and None not in owners, owners
        assert min(owners[w] for w in workers) >= 1, owners
        time.sleep(1)
        victim = owners.most_common(1)[0][0]
        assert victim is not None

        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        # One snapshot per poll: two /proc reads could see the dying victim in one and
        # not in the other, and pass before the replacement exists.
        wait_for(
            lambda: replacement_of(victim, workers, children(master)) is not None,
            15,
            what="Gunicorn to replace the killed worker",
        )
        replacement = replacement_of(victim, workers, children(master))
        assert replacement is not None, children(master)
        wait_for(lambda: service_events(service, "application_startup_complete") == WORKERS + 1,
                 15, what="the new worker's start-up")  # fmt: skip
        recovered = time.monotonic() - killed_at
        # Readiness: 200 again, on fresh connections (either worker).
        ready = [httpx.get(f"{service.url}/health/ready", timeout=5) for _ in range(20)]
        # Under this load one check may hit its 0.8 s timeout in a stall of the machine;
        # that is tolerated once, an error or a second failure is not.
        failed = [r.json() for r in ready if r.status_code != 200]
        assert len(failed) <= 1, failed
        assert all(checks_timed_out(r, r["failing"]) for r in failed), failed
        time.sleep(2)  # keep the load on the new worker for a while
        stop.set()
        for client in clients:
            client.join(15)
        # Connections opened after the kill went to either worker: find their owners.
    finally:
        service.stop()

    all_connections = [c for client in clients for c in client.connections]
    before = {id(c) for c in connections}
    survivors = [c for c in connections if c.owner != victim]
    on_victim = [c for c in connections if c.owner == victim]
    later = [c for c in all_connections if id(c) not in before]
    sent = sum(c.sent for c in all_connections)
    # Every request on a surviving worker's connection succeeded.
    assert survivors and all(not c.failed for c in survivors), [c.failed for c in survivors]
    # A connection to the killed worker loses at most the one request it had in flight.
    assert all(len(c.failed) <= 1 for c in on_victim)
    # Reconnected clients (to any worker, the replacement included) lost nothing.
    assert later and all(not c.failed for c in later), [c.failed for c in later]
    lost = sum(len(c.failed) for c in on_victim)
    records = service.records()
    assert any(
        "SIGKILL" in str(r.get("detail", "")) and str(victim) in str(r.get("detail", ""))
        for r in records
    )
    print(
        f"\nworker kill: {sent} requests on {len(all_connections)} connections;"
        f" {lost} failed, all on the killed worker's {len(on_victim)} connections;"
        f" 0 of {sum(c.sent for c in survivors)} on the other worker's;"
        f" 0 of {sum(c.sent for c in later)} after reconnecting; replacement {replacement}"
        f" serving after {recovered:.1f}s"
    )


def service_events(service: ServiceProcess, message: str) -> int:
    return len(service.events(message))


def replacement_of(victim: int, workers: list[int], current: list[int]) -> int | None:
    """The new worker once the victim is gone and the pool is full again, else None."""
    new = set(current) - set(workers)
    if victim in current or len(current) != WORKERS or not new:
        return None
    return new.pop()
