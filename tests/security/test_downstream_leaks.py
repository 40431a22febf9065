"""Issue 25 item 3: nothing about the downstream reaches a client. A DOWNSTREAM_URL with
user:password@ stops the start (one line naming the variable, the password nowhere); a
failed call answers a fixed text (no URL, host or port) while the log line says why, and
its exported CLIENT span carries the URL and the error's type only. Real Gunicorn, real
downstream sockets, a real OTLP receiver."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import pytest

from tests.security.downstream_stub import DownstreamStub
from tools.testbed.otlp_receiver import OtlpReceiver
from tools.testbed.servers import ServiceProcess
from tools.testbed.support import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.security]
SECRET = "dsPW-s3cr3t-777"
CLIENT = 3  # OTLP span kind
SPAN_ATTRIBUTES = {"http.request.method", "url.full", "server.address", "server.port"}


def test_credentials_in_downstream_url_stop_the_start_and_are_written_nowhere() -> None:
    url = f"http://dsuser:{SECRET}@127.0.0.1:{free_port()}"
    service = ServiceProcess(env={"DOWNSTREAM_URL": url}).start(wait=None)
    try:
        code = service.wait(30)
    finally:
        service.stop()
    assert code != 0
    assert SECRET not in service.output() and "dsuser" not in service.output()
    [line] = service.records()
    assert line["message"] == "invalid_configuration"
    assert line["error"].startswith("invalid environment variable DOWNSTREAM_URL: "), line


@contextmanager
def silent_port() -> Iterator[int]:
    """Connects (the kernel completes the handshake) and never answers: nothing accepts."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield int(listener.getsockname()[1])


@contextmanager
def oversized_answer() -> Iterator[int]:
    with DownstreamStub() as stub:
        stub.body_bytes = 2048  # DOWNSTREAM_MAX_BODY_BYTES is 1024 below
        yield int(stub.server.server_address[1])


@contextmanager
def refused_port() -> Iterator[int]:
    yield free_port()


CASES = [
    (refused_port, 502, "downstream unavailable", "ConnectError"),
    (oversized_answer, 502, "downstream answer too large", "DownstreamTooLarge"),
    (silent_port, 504, "downstream timed out", "ReadTimeout"),
]


@pytest.mark.parametrize(
    ("downstream", "status", "detail", "error_type"), CASES, ids=["refused", "large", "silent"]
)
def test_a_failed_call_answers_a_fixed_text_and_logs_the_reason(
    otlp: OtlpReceiver,
    downstream: Callable[[], AbstractContextManager[int]],
    status: int,
    detail: str,
    error_type: str,
) -> None:
    trace_id = secrets.token_hex(16)  # a trace of this case's own
    with downstream() as port:
        url = f"http://127.0.0.1:{port}"
        service = ServiceProcess(
            env={
                "DOWNSTREAM_URL": url,
                "DOWNSTREAM_TIMEOUT_SECONDS": "1",
                "DOWNSTREAM_MAX_BODY_BYTES": "1024",
                "WEB_CONCURRENCY": "1",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            }
        ).start()
        try:
            response = httpx.get(
                f"{service.url}/api/downstream",
                headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
                timeout=30,
            )
            line = service.wait_for_event("downstream_unavailable", status_code=status)
            wait_for(
                lambda: any(s["kind"] == CLIENT for s in otlp.spans_for(trace_id)),
                15,
                what="the CLIENT span at the receiver",
            )
        finally:
            service.stop()
    assert response.status_code == status, response.text
    assert response.json() == {"detail": detail, "request_id": response.headers["x-request-id"]}
    assert str(port) not in response.text and "127.0.0.1" not in response.text
    # The operator's side: which call, and why.
    assert line["error"].startswith(f"GET {url}/api/ping: {error_type}"), line
    [span] = [s for s in otlp.spans_for(trace_id) if s["kind"] == CLIENT]
    attributes = span["attributes"]
    assert set(attributes) == {*SPAN_ATTRIBUTES, "error.type"}, attributes
    assert attributes["url.full"].string_value == f"{url}/api/ping"
    assert attributes["error.type"].string_value == error_type
