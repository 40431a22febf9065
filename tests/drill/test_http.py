"""The drill's HTTP/1.1 client: parsing, framing, and what it raises when a server misbehaves."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from tools.drill import http
from tools.drill.errors import ErrorKind, ProtocolError, classify


def test_parse_head() -> None:
    head = http.parse_head(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nX-A:  b ")
    assert head == http.Head("HTTP/1.1", 503, {"retry-after": "30", "x-a": "b"})


@pytest.mark.parametrize("raw", [b"", b"HTTP/2 200", b"HTTP/1.1 OK", b"HTTP/1.1 200\r\nnocolon"])
def test_parse_head_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        http.parse_head(raw)


@pytest.mark.parametrize(
    ("version", "connection", "expected"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Keep-Alive, Close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
def test_keeps_alive(version: str, connection: str | None, expected: bool) -> None:
    headers = {} if connection is None else {"connection": connection}
    assert http.keeps_alive(http.Head(version, 200, headers)) is expected


@pytest.mark.parametrize(
    ("status", "headers", "method", "expected"),
    [
        (200, {"content-length": "12"}, "GET", ("length", 12)),
        (200, {"transfer-encoding": "chunked", "content-length": "3"}, "GET", ("chunked", 0)),
        (200, {}, "GET", ("eof", 0)),
        (204, {}, "GET", ("none", 0)),
        (200, {"content-length": "12"}, "HEAD", ("none", 0)),
    ],
)
def test_body_framing(
    status: int, headers: dict[str, str], method: str, expected: tuple[str, int]
) -> None:
    assert http.body_framing(http.Head("HTTP/1.1", status, headers), method) == expected


def test_body_framing_rejects_bad_length() -> None:
    with pytest.raises(ProtocolError):
        http.body_framing(http.Head("HTTP/1.1", 200, {"content-length": "-1"}), "GET")


def test_render_request() -> None:
    raw = http.render_request("POST", "/api/items", "h:1", {"X-Request-ID": "d-1"}, b"{}")
    assert raw == (
        b"POST /api/items HTTP/1.1\r\nHost: h:1\r\nUser-Agent: fastapi-app-drill\r\n"
        b"X-Request-ID: d-1\r\nContent-Length: 2\r\n\r\n{}"
    )


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[int]:
    """A one-off server on a loopback port that reads a request head, then runs handler."""

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await handler(reader, writer)

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _one(handler: Handler, timeout_s: float = 2.0) -> http.Response:
    async with serve(handler) as port:
        conn = await http.connect("127.0.0.1", port, 1.0)
        try:
            data = http.render_request("GET", "/", "t")
            return await http.request(conn, data, "GET", timeout_s)
        finally:
            conn.close()


def _reply(raw: bytes, close: bool = True) -> Handler:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()

    return handler


async def _failure(handler: Handler, timeout_s: float = 2.0) -> tuple[ErrorKind, str]:
    with pytest.raises(Exception) as info:
        await _one(handler, timeout_s)
    failure = classify(info.value)
    return failure.kind, failure.detail


def test_reads_content_length_chunked_and_eof_bodies() -> None:
    asyncio.run(_test_reads_content_length_chunked_and_eof_bodies())


async def _test_reads_content_length_chunked_and_eof_bodies() -> None:
    r = await _one(_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close=False))
    assert (r.status, r.body, r.keep_alive) == (200, b"ok", True)
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1;x=y\r\n!\r\n0\r\n\r\n"
    )
    r = await _one(_reply(chunked, close=False))
    assert (r.body, r.keep_alive) == (b"ok!", True)
    r = await _one(_reply(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"))
    assert (r.body, r.keep_alive) == (b"until the end", False)
    r = await _one(_reply(b"HTTP/1.1 503 No\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
    assert (r.status, r.keep_alive) == (503, False)


def test_closed_without_response_is_a_reset() -> None:
    asyncio.run(_test_closed_without_response_is_a_reset())


async def _test_closed_without_response_is_a_reset() -> None:
    assert await _failure(_reply(b"")) == (ErrorKind.RESET, "closed_before_response")


def test_closed_mid_response_is_a_reset() -> None:
    asyncio.run(_test_closed_mid_response_is_a_reset())


async def _test_closed_mid_response_is_a_reset() -> None:
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    assert await _failure(_reply(half)) == (ErrorKind.RESET, "closed_mid_response")


def test_tcp_reset_is_a_reset() -> None:
    asyncio.run(_test_tcp_reset_is_a_reset())


async def _test_tcp_reset_is_a_reset() -> None:
    async def rst(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with linger 0 the kernel sends RST, not FIN

    kind, _ = await _failure(rst)
    assert kind == ErrorKind.RESET


def test_slow_server_is_a_response_timeout() -> None:
    asyncio.run(_test_slow_server_is_a_response_timeout())


async def _test_slow_server_is_a_response_timeout() -> None:
    async def stall(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        writer.close()

    assert await _failure(stall, timeout_s=0.2) == (ErrorKind.TIMEOUT, "response")


def test_garbage_is_a_protocol_error() -> None:
    asyncio.run(_test_garbage_is_a_protocol_error())


async def _test_garbage_is_a_protocol_error() -> None:
    assert (await _failure(_reply(b"SSH-2.0-OpenSSH\r\n\r\n")))[0] == ErrorKind.PROTOCOL


def test_refused_connection() -> None:
    asyncio.run(_test_refused_connection())


async def _test_refused_connection() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError) as info:
        await http.connect("127.0.0.1", port, 1.0)
    assert classify(info.value).kind == ErrorKind.REFUSED
