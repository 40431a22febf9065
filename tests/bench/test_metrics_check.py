"""The run's "serves request metrics" check asks the variant's METRICS_PORT. A variant with
metrics off never binds that port, and another variant's listener may have been given the
same free port since: the check then counted the stranger's answer as the variant's
(`make bench-smoke` failed once with "job-access-line: metrics True, must be False"). An
answer counts only with the variant's own revision in its build_info."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram

from bench.receiver import CountingReceiver
from bench.run import Variant, serves_request_metrics
from service.server.metrics_listener import MetricsServer
from service.telemetry.metrics import BuildInfo
from tools.testbed.servers import ServiceProcess


@pytest.fixture
def listener() -> Iterator[tuple[MetricsServer, int]]:
    """Some variant's metrics listener, with request durations, on a port of its own."""
    registry = CollectorRegistry()
    registry.register(BuildInfo("api", "0.1.0", "bench-full"))
    durations = Histogram(
        "http_server_request_duration_seconds", "d", ["http_route"], registry=registry
    )
    durations.labels("/api/ping").observe(0.001)
    sock = socket.create_server(("127.0.0.1", 0))
    server = MetricsServer(registry, sock)
    yield server, sock.getsockname()[1]
    server.close()


def variant_on(name: str, metrics_port: int) -> Variant:
    variant = Variant(name, "service.main:app", "full", CountingReceiver())
    variant.service = ServiceProcess(env={"METRICS_PORT": str(metrics_port)})
    return variant


def test_only_the_variants_own_listener_counts(listener: tuple[MetricsServer, int]) -> None:
    _, port = listener
    full, other = variant_on("full", port), variant_on("job-access-line", port)
    try:
        assert serves_request_metrics(full)
        # job-access-line (metrics off) was given the same port: not its own answer.
        assert not serves_request_metrics(other)
    finally:
        for variant in (full, other):
            variant.receiver.server.server_close()  # never started: only its socket
