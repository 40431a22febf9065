"""Issue 25 item 5: trace context at the edge, seen by a real downstream that records the
headers the real Gunicorn sends it.

- A client's `baggage` stops here: only the keys BAGGAGE_ALLOWED_KEYS names (none by
  default) go on.
- Its `tracestate` goes on with its trace (W3C propagation of a continued trace).
- Its `sampled` flag decides sampling under the default parent-based sampler;
  OTEL_TRACES_SAMPLER=always_off ignores it; traceidratio ignores the flag but decides by
  the trace id, which the client also picks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.downstream_stub import DownstreamStub
from tools.testbed.servers import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.security]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


@pytest.fixture(scope="module")
def downstream() -> Iterator[DownstreamStub]:
    with DownstreamStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def service(downstream: DownstreamStub) -> Iterator[ServiceProcess]:
    env = {"DOWNSTREAM_URL": downstream.url, "BAGGAGE_ALLOWED_KEYS": "tenant"}
    process = ServiceProcess(env={**env, "WEB_CONCURRENCY": "1"}).start()
    yield process
    process.stop()


def sent_on(
    service: ServiceProcess, downstream: DownstreamStub, headers: dict[str, str]
) -> dict[str, str]:
    """The headers the downstream got for one GET /api/downstream with `headers`."""
    before = len(downstream.requests)
    response = httpx.get(f"{service.url}/api/downstream", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    [received] = downstream.requests[before:]
    return received


def traceparent(trace_id: str = TRACE_ID, sampled: bool = True) -> str:
    return f"00-{trace_id}-00f067aa0ba902b7-0{int(sampled)}"


def sampled(headers: dict[str, str]) -> bool:
    return bool(int(headers["traceparent"].rsplit("-", 1)[1], 16) & 1)


def test_a_clients_baggage_does_not_reach_the_downstream(
    service: ServiceProcess, downstream: DownstreamStub
) -> None:
    headers = {"traceparent": traceparent(), "tracestate": TRACESTATE}
    received = sent_on(service, downstream, {**headers, "baggage": "user_id=admin,role=superuser"})
    assert "baggage" not in received, received
    # The trace itself goes on: same trace, the client's tracestate with it.
    assert received["traceparent"].split("-")[1] == TRACE_ID
    assert received["tracestate"] == TRACESTATE


def test_allowed_baggage_keys_go_on_alone(
    service: ServiceProcess, downstream: DownstreamStub
) -> None:
    received = sent_on(service, downstream, {"baggage": "user_id=admin,tenant=t-1,role=root"})
    assert received["baggage"] == "tenant=t-1"


def test_the_default_sampler_follows_the_clients_flag(
    service: ServiceProcess, downstream: DownstreamStub
) -> None:
    assert sampled(sent_on(service, downstream, {"traceparent": traceparent(sampled=True)}))
    assert not sampled(sent_on(service, downstream, {"traceparent": traceparent(sampled=False)}))


@pytest.mark.parametrize(
    ("env", "trace_id", "flag", "expected"),
    [
        # always_off: never sampled, whatever the client says; no baggage by default.
        ({"OTEL_TRACES_SAMPLER": "always_off"}, TRACE_ID, True, False),
        # traceidratio ignores the flag but samples trace ids whose low 64 bits are under
        # ratio * 2^64: a client that picks such an id gets sampled.
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.001"},
            "4bf92f3577b34da60000000000000000",
            False,
            True,
        ),
    ],
    ids=["always_off", "traceidratio"],
)
def test_samplers_that_ignore_the_clients_flag(
    downstream: DownstreamStub, env: dict[str, str], trace_id: str, flag: bool, expected: bool
) -> None:
    process = ServiceProcess(
        env={**env, "DOWNSTREAM_URL": downstream.url, "WEB_CONCURRENCY": "1"}
    ).start()
    try:
        headers = {"traceparent": traceparent(trace_id, flag), "baggage": "user_id=admin"}
        received = sent_on(process, downstream, headers)
    finally:
        process.stop()
    assert sampled(received) is expected
    assert "baggage" not in received  # BAGGAGE_ALLOWED_KEYS' default: none


def test_the_downstream_is_asked_for_an_uncompressed_answer(
    service: ServiceProcess, downstream: DownstreamStub
) -> None:
    """The body bound counts bytes held in memory: a compressed answer could expand past
    it before it is counted, so none is asked for."""
    received = sent_on(service, downstream, {})
    assert received.get("accept-encoding") == "identity", received
