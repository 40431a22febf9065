"""Hypothesis over request headers sent as raw bytes (control characters, Latin-1 and
UTF-8 bytes, JSON fragments): the log stays one valid JSON object per line and nothing a
client sends can set or forge a field of the access line."""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.resilience.harness import RawResponse, parse_response, request_bytes
from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.resilience
PROXY = "127.0.0.2"  # the only trusted proxy; the fuzzing client connects from 127.0.0.1
VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# W3C Trace Context: version-traceid-parentid-flags; later versions may append fields.
TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?")
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")
ACCESS_KEYS = {
    "timestamp", "level", "message", "service", "request_id", "trace_id", "span_id",
    "method", "path", "status_code", "duration_ms", "client_ip", "user_agent",
}  # fmt: skip
FRAGMENTS = [
    b'","level":"critical","message":"forged","request_id":"x',
    b'"}\n{"message":"forged"}',
    b'\\u0000\\n\\"',
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    b"ffffffffffffffffffffffffffffffff",
    b"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",  # UTF-8 bytes (the server reads Latin-1)
    b"\x1b[31m",
    b"\x85 NEL, \xe2\x80\xa8 LS",  # Unicode line breaks (as Latin-1: U+0085 and others)
    b"127.0.0.1, 10.0.0.1",
    b"for=1.2.3.4;proto=https",
    b"https",
]
# Any byte but CR and LF (those end a header line; tested separately below).
header_bytes = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
header_value = st.one_of(
    header_bytes,
    st.sampled_from(FRAGMENTS),
    st.lists(st.one_of(header_bytes, st.sampled_from(FRAGMENTS)), max_size=4).map(b"".join),
    st.from_regex(rb"\A[A-Za-z0-9._-]{1,70}\Z"),  # request-id-like, some too long
    st.from_regex(rb"\A0[0-9a-f]-[0-9a-f]{32}-[0-9a-f]{16}-0[01]\Z"),  # traceparent-like
)
HEADER_NAMES = [
    b"X-Request-ID",
    b"traceparent",
    b"tracestate",
    b"baggage",
    b"X-Forwarded-For",
    b"X-Forwarded-Proto",
    b"X-Forwarded-Host",
    b"Forwarded",
    b"User-Agent",
]
headers_strategy = st.dictionaries(st.sampled_from(HEADER_NAMES), header_value, min_size=1)


@dataclass
class Sent:
    path: str  # unique per request (a 404): how its access line is found
    headers: dict[bytes, bytes]
    response: RawResponse
    via_proxy: bool


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    svc = ServiceProcess(env={"FORWARDED_ALLOW_IPS": PROXY}).start()
    yield svc
    svc.stop()


def send(
    port: int, path: str, headers: dict[bytes, bytes], source: str = "127.0.0.1"
) -> RawResponse:
    request = request_bytes("GET", path, [*headers.items(), (b"Connection", b"close")])
    data = b""
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(data)


def test_headers_cannot_break_or_forge_the_log(service: ServiceProcess) -> None:
    sent: list[Sent] = []

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(headers=headers_strategy, via_proxy=st.booleans())
    def one_request(headers: dict[bytes, bytes], via_proxy: bool) -> None:
        path = f"/api/fuzz/{len(sent)}"
        response = send(service.port, path, headers, PROXY if via_proxy else "127.0.0.1")
        sent.append(Sent(path, headers, response, via_proxy))
        assert response.status in (404, 400), response
        if response.status == 400:  # the HTTP parser refused a byte: no request at all
            return
        request_id = response.headers["x-request-id"].encode()
        incoming = headers.get(b"X-Request-ID")
        if incoming is not None and VALID_ID.fullmatch(incoming):
            assert request_id == incoming
        else:
            assert HEX32.fullmatch(request_id.decode())

    one_request()
    # NEL (0x85 is U+0085 in Latin-1) reaches the log as is: the line must stay one line.
    path = f"/api/fuzz/{len(sent)}"
    nel = {b"User-Agent": b"agent\x85next", b"X-Request-ID": b"nel-1"}
    sent.append(Sent(path, nel, send(service.port, path, nel), False))
    # A bare CR or LF inside a value would start a forged header line: refused.
    for value in (b"ua\rX-Injected: 1", b"ua\nX-Injected: 1"):
        response = send(service.port, "/api/ping", {b"User-Agent": value})
        assert response.status == 400, (value, response)
        sent.append(Sent("/api/ping", {b"User-Agent": value}, response, False))

    check_log(service, sent)


def honoured(traceparent: bytes) -> bool:
    parent = TRACEPARENT.fullmatch(traceparent)
    if parent is None or parent.group(1) == b"ff":
        return False
    if parent.group(1) == b"00" and parent.group(4):
        return False
    return parent.group(2) != b"0" * 32 and parent.group(3) != b"0" * 16


def check_log(service: ServiceProcess, sent: list[Sent]) -> None:
    records = service.records()  # fails on the first line that is not JSON
    access = {r["path"]: r for r in records if r["message"] == "request_completed"}
    served = [s for s in sent if s.response.status == 404]
    for s in served:
        line = access[s.path]
        what = f"{s.headers!r} -> {line}"
        # The schema's fields carry the server's values, whatever the headers said.
        assert set(line) == ACCESS_KEYS, what
        assert (line["level"], line["message"], line["service"]) == (
            "info",
            "request_completed",
            "api",
        ), what
        assert line["request_id"] == s.response.headers["x-request-id"], what
        assert (line["method"], line["status_code"]) == ("GET", 404), what
        assert HEX32.fullmatch(line["trace_id"]) and HEX16.fullmatch(line["span_id"]), what
        # A well-formed traceparent is continued; anything else starts a fresh trace.
        traceparent = s.headers.get(b"traceparent", b"").strip(b" \t")
        if honoured(traceparent):
            assert line["trace_id"].encode() == traceparent[3:35], what
        else:
            assert line["trace_id"].encode() not in traceparent, what
        # User agents are logged verbatim (as Latin-1), clipped to 512 characters.
        agent = s.headers.get(b"User-Agent", b"").decode("latin-1").strip(" \t")
        assert line["user_agent"] == agent[:512], what
        # X-Forwarded-For counts only from the trusted proxy.
        if not s.via_proxy:
            assert line["client_ip"] == "127.0.0.1", what
        elif b"X-Forwarded-For" not in s.headers:
            assert line["client_ip"] == PROXY, what
    refused = Counter(s.response.status for s in sent)
    print(
        f"\nheader fuzzing: {len(sent)} requests {dict(refused)} (400: refused by the HTTP"
        f" parser); {len(served)} access lines matched, {len(records)} lines checked"
    )
