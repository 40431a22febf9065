"""Slow clients: a head sent a byte a second, a connection that never sends, an idle
kept-alive connection and a body that stops halfway are closed by the configured
timeouts, while the same workers keep answering everyone else at full speed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from service import gunicorn_conf
from service.server import http_limits
from tests.resilience.harness import Load, parse_response
from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.resilience
HEADER_TIMEOUT = gunicorn_conf.HEADER_TIMEOUT_SECONDS
KEEPALIVE = gunicorn_conf.keepalive
BODY_TIMEOUT = http_limits.BODY_READ_TIMEOUT_SECONDS
SLACK_SECONDS = 2.0
HEAD = b"GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n\r\n"


@dataclass
class Result:
    kind: str
    closed_after_s: float | None = None  # None: still open when the test gave up
    data: bytes = b""
    bytes_sent: int = 0


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    svc = ServiceProcess().start()
    yield svc
    svc.stop()


def wait_closed(
    sock: socket.socket, started: float, give_up_s: float
) -> tuple[float | None, bytes]:
    data = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < give_up_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started, data
        if not chunk:
            return time.monotonic() - started, data
        data += chunk
    return None, data


def slowloris(port: int, give_up_s: float, trickle: bytes = HEAD) -> Result:
    """One byte a second; stops sending when the server answers or closes."""
    result = Result("slowloris")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(1.0)
        started = time.monotonic()
        for byte in trickle:
            try:
                sock.sendall(bytes([byte]))
                result.bytes_sent += 1
                result.data += sock.recv(65536)  # an answer, or b"" when closed
                break
            except TimeoutError:
                continue  # a second passed without an answer: next byte
            except OSError:
                break
        closed, data = wait_closed(sock, started, give_up_s)
        result.closed_after_s, result.data = closed, result.data + data
    return result


def idle(port: int, give_up_s: float) -> Result:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        closed, data = wait_closed(sock, started, give_up_s)
    return Result("idle", closed, data)


def kept_alive(port: int, give_up_s: float) -> Result:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(HEAD)
        response = b""
        while b"pong" not in response:
            response += sock.recv(65536)
        started = time.monotonic()
        closed, data = wait_closed(sock, started, give_up_s)
    return Result("kept-alive", closed, response + data)


def stalled_body(port: int, give_up_s: float) -> Result:
    """A complete head announcing 40 bytes of body, then 8 of them, then silence."""
    head = (
        b"POST /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: stalled-body\r\n"
        b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + b'{"name":')
        started = time.monotonic()
        closed, data = wait_closed(sock, started, give_up_s)
    return Result("stalled-body", closed, data)


def crlf_trickle(port: int, give_up_s: float) -> Result:
    """After one response, a CR or LF a second (which starts no request at all)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(HEAD)
        response = b""
        while b"pong" not in response:
            response += sock.recv(65536)
        sock.settimeout(1.0)
        started = time.monotonic()
        data = b""
        for byte in b"\r\n" * int(give_up_s):
            try:
                sock.sendall(bytes([byte]))
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            data += chunk
            if not chunk:
                break
        closed, rest = wait_closed(sock, started, give_up_s)
    return Result("crlf", closed, data + rest)


def test_slow_and_idle_connections_are_closed_while_others_are_served(
    service: ServiceProcess,
) -> None:
    give_up = max(HEADER_TIMEOUT, BODY_TIMEOUT) + 3 * SLACK_SECONDS
    results: list[Result] = []
    lock = threading.Lock()

    def run(probe: Callable[[int, float], Result]) -> None:
        result = probe(service.port, give_up)
        with lock:
            results.append(result)

    probes = [slowloris] * 10 + [idle] * 10 + [kept_alive] * 3 + [crlf_trickle] * 3
    probes += [stalled_body] * 3
    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in probes]
    with Load(
        service.port,
        lambda thread, i: ("GET", "/api/ping", None),
        threads=2,
        max_requests=2000,
        deadline_s=give_up,
        pause_s=0.01,
    ) as load:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(give_up + 5)
    outcomes = load.snapshot()

    by_kind: dict[str, list[Result]] = {}
    for result in results:
        by_kind.setdefault(result.kind, []).append(result)
    assert len(results) == len(probes)
    for result in by_kind["slowloris"]:
        assert result.closed_after_s is not None, f"still open after {give_up}s"
        assert HEADER_TIMEOUT - 0.5 <= result.closed_after_s <= HEADER_TIMEOUT + SLACK_SECONDS
        assert result.bytes_sent < len(HEAD)
        response = parse_response(result.data)
        assert response.status == 408, response
    for result in by_kind["idle"]:
        assert result.closed_after_s is not None
        assert HEADER_TIMEOUT - 0.5 <= result.closed_after_s <= HEADER_TIMEOUT + SLACK_SECONDS
        assert result.data == b""  # closed without a word: it never asked anything
    for result in by_kind["kept-alive"]:
        assert result.closed_after_s is not None
        assert KEEPALIVE - 0.5 <= result.closed_after_s <= KEEPALIVE + SLACK_SECONDS
    for result in by_kind["crlf"]:
        assert result.closed_after_s is not None
        assert result.closed_after_s <= HEADER_TIMEOUT + SLACK_SECONDS
        assert parse_response(result.data).status == 408
    for result in by_kind["stalled-body"]:
        assert result.closed_after_s is not None
        assert BODY_TIMEOUT - 0.5 <= result.closed_after_s <= BODY_TIMEOUT + SLACK_SECONDS
        response = parse_response(result.data)
        assert response.status == 408, response
        assert b"request body stalled" in result.data

    # Meanwhile the same two workers answered everyone else, and fast.
    assert len(outcomes) > 300
    assert all(o.status == 200 for o in outcomes), [o.error for o in outcomes if o.error][:5]
    # Held connections would show as multi-second stalls (up to HEADER_TIMEOUT); the
    # bound leaves room for a busy CI machine.
    latencies = sorted(o.elapsed_s for o in outcomes)
    slowest = latencies[-1]
    assert slowest < 2.0 and latencies[len(latencies) // 2] < 0.1, latencies[-5:]
    records = service.records()
    # The slowloris heads, the CR LF trickles and the stalled bodies got a 408 (and an
    # access line each); idle connections nothing.
    timeouts = [
        r for r in records if r.get("status_code") == 408 and r["message"] == "request_completed"
    ]
    refused_heads = [r for r in timeouts if r.get("error")]
    assert len(refused_heads) == 13, timeouts
    slow_heads = [r for r in refused_heads if r["method"] == "GET"]
    assert len(slow_heads) == 10 and all(r["duration_ms"] >= 9000 for r in slow_heads)
    bodies = [r for r in timeouts if r["method"] == "POST"]
    assert len(bodies) == 3 and all(r["duration_ms"] >= (BODY_TIMEOUT - 1) * 1000 for r in bodies)
    assert len(timeouts) == 16, timeouts
    print(
        f"\nslow clients: {len(probes)} held connections closed"
        f" (slowloris {max(r.closed_after_s or 0 for r in by_kind['slowloris']):.1f}s,"
        f" idle {max(r.closed_after_s or 0 for r in by_kind['idle']):.1f}s,"
        f" kept-alive {max(r.closed_after_s or 0 for r in by_kind['kept-alive']):.1f}s,"
        f" stalled body {max(r.closed_after_s or 0 for r in by_kind['stalled-body']):.1f}s);"
        f" {len(outcomes)} other requests, 0 failed, slowest {slowest:.3f}s"
    )
