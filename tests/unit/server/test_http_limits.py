"""BoundedHttpToolsProtocol fed bytes directly, on a fake transport and a loop whose timers
the test fires: the request-head limits at their boundaries, the header timeout, and the
refusal (JSON error shape, X-Request-ID, Connection: close, one access line)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, cast

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.server.http_limits import (
    HEADER_TIMEOUT_SECONDS,
    LIMIT_REQUEST_FIELD_SIZE,
    LIMIT_REQUEST_FIELDS,
    LIMIT_REQUEST_LINE,
    MAX_LOGGED_PATH_BYTES,
    MAX_REQUEST_HEAD_BYTES,
    BoundedHttpToolsProtocol,
)


class Transport:
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.7", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Timer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled
        self.cancelled = True  # done: no longer pending
        self.callback()


class Task:
    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        pass


class Loop:
    """call_later records a Timer the test fires; create_task keeps the app's coroutine
    unstarted (closed at the end)."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []
        self.coroutines: list[Coroutine[Any, Any, Any]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        self.timers.append(Timer(delay, callback))
        return self.timers[-1]

    def create_task(self, coroutine: Coroutine[Any, Any, Any], **kwargs: Any) -> Task:
        self.coroutines.append(coroutine)
        return Task()

    def pending(self) -> list[Timer]:
        return [timer for timer in self.timers if not timer.cancelled]


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


Connection = tuple[BoundedHttpToolsProtocol, Transport, Loop]


@pytest.fixture
def connection() -> Iterator[Connection]:
    loop = Loop()
    config = Config(app=ok_app, http=BoundedHttpToolsProtocol, log_config=None, lifespan="off")
    protocol = BoundedHttpToolsProtocol(config, ServerState(), {}, _loop=cast(Any, loop))
    transport = Transport()
    protocol.connection_made(cast(asyncio.Transport, transport))
    yield protocol, transport, loop
    for coroutine in loop.coroutines:
        coroutine.close()


def head(target: bytes = b"/api/ping", fields: list[tuple[bytes, bytes]] | None = None) -> bytes:
    lines = [b"GET %s HTTP/1.1" % target, b"host: test"]
    lines += [name + b": " + value for name, value in fields or []]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def field_of(size: int, name: bytes = b"x-f") -> tuple[bytes, bytes]:
    """A header field whose "name: value" is `size` bytes."""
    return name, b"v" * (size - len(name) - 2)


def response(transport: Transport) -> tuple[int, dict[str, str], dict[str, Any]]:
    raw_head, _, body = transport.written.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def refused_with(transport: Transport, status: int) -> dict[str, Any]:
    """The refusal's answer is complete and closes; returns its JSON body."""
    code, headers, body = response(transport)
    assert code == status
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert body["request_id"] == headers["x-request-id"]
    assert transport.closed
    return body


def test_a_head_within_every_limit_reaches_the_app(connection: Connection) -> None:
    protocol, transport, loop = connection
    fields = [field_of(LIMIT_REQUEST_FIELD_SIZE)] + [
        (b"x-%d" % n, b"1")
        for n in range(LIMIT_REQUEST_FIELDS - 2)  # host is one
    ]
    protocol.data_received(head(b"/" + b"a" * (LIMIT_REQUEST_LINE - 1), fields))
    assert transport.written == b"" and not transport.closed
    assert len(loop.coroutines) == 1  # the app's cycle was started
    assert protocol.refusal is None


def test_a_target_one_byte_over_the_limit_is_414(connection: Connection) -> None:
    protocol, transport, loop = connection
    protocol.data_received(head(b"/" + b"a" * LIMIT_REQUEST_LINE))
    body = refused_with(transport, 414)
    assert body["detail"] == f"request target longer than {LIMIT_REQUEST_LINE} bytes"
    assert loop.coroutines == []  # the app never saw it


def test_a_target_split_over_reads_is_counted_whole(connection: Connection) -> None:
    protocol, transport, _ = connection
    protocol.data_received(b"GET /" + b"a" * (LIMIT_REQUEST_LINE // 2))
    protocol.data_received(b"a" * (LIMIT_REQUEST_LINE // 2 + 1) + b" HTTP/1.1\r\n")
    refused_with(transport, 414)


def test_one_header_field_too_many_is_431(connection: Connection) -> None:
    protocol, transport, _ = connection
    fields = [(b"x-%d" % n, b"1") for n in range(LIMIT_REQUEST_FIELDS)]  # plus host
    protocol.data_received(head(fields=fields))
    body = refused_with(transport, 431)
    assert body["detail"] == f"more than {LIMIT_REQUEST_FIELDS} header fields"


def test_a_header_field_one_byte_too_long_is_431(connection: Connection) -> None:
    protocol, transport, _ = connection
    protocol.data_received(head(fields=[field_of(LIMIT_REQUEST_FIELD_SIZE + 1)]))
    body = refused_with(transport, 431)
    assert body["detail"] == f"header field longer than {LIMIT_REQUEST_FIELD_SIZE} bytes"


def test_fields_each_within_limits_but_too_large_together_are_431(
    connection: Connection,
) -> None:
    protocol, transport, _ = connection
    count = MAX_REQUEST_HEAD_BYTES // LIMIT_REQUEST_FIELD_SIZE + 1
    fields = [field_of(LIMIT_REQUEST_FIELD_SIZE, b"x-%d" % n) for n in range(count)]
    protocol.data_received(head(fields=fields))
    body = refused_with(transport, 431)
    assert body["detail"] == f"request head larger than {MAX_REQUEST_HEAD_BYTES} bytes"


def test_a_header_field_that_never_ends_is_431_once_past_the_head_limit(
    connection: Connection,
) -> None:
    """httptools buffers an incomplete field without a callback: the chunks are counted."""
    protocol, transport, _ = connection
    protocol.data_received(b"GET / HTTP/1.1\r\nx-endless: ")
    chunk = b"v" * 4096
    for _ in range(MAX_REQUEST_HEAD_BYTES // len(chunk) - 1):
        protocol.data_received(chunk)
    assert transport.written == b""  # still within the bound
    protocol.data_received(chunk)
    protocol.data_received(chunk)
    body = refused_with(transport, 431)
    assert body["detail"] == f"request head larger than {MAX_REQUEST_HEAD_BYTES} bytes"


def test_malformed_input_keeps_uvicorns_plain_400(connection: Connection) -> None:
    protocol, transport, _ = connection
    protocol.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: text/plain" in transport.written
    assert transport.closed


def test_the_head_timer_is_armed_at_connection_and_cancelled_by_a_complete_head(
    connection: Connection,
) -> None:
    protocol, _, loop = connection
    [timer] = loop.timers
    assert timer.delay == HEADER_TIMEOUT_SECONDS
    protocol.data_received(b"GET /api/ping HTTP/1.1\r\n")
    assert loop.pending() == [timer]  # a byte arrived: the same clock runs on
    protocol.data_received(b"host: test\r\n\r\n")
    assert loop.pending() == []


def test_a_connection_that_never_sends_a_byte_is_closed_without_an_answer(
    connection: Connection,
) -> None:
    _, transport, loop = connection
    loop.timers[0].fire()
    assert transport.closed and transport.written == b""


def test_an_incomplete_head_at_the_timeout_is_408(connection: Connection) -> None:
    protocol, transport, loop = connection
    protocol.data_received(b"GET /api/ping HTTP/1.1\r\nhost: te")
    loop.timers[0].fire()
    body = refused_with(transport, 408)
    assert body["detail"] == f"request head not complete after {HEADER_TIMEOUT_SECONDS} s"


def test_the_timeout_waits_while_the_previous_response_is_still_being_written(
    connection: Connection,
) -> None:
    protocol, transport, loop = connection
    protocol.data_received(head())  # its response is not written yet
    protocol.data_received(b"GET /next HTTP/1.1\r\n")  # a pipelined head begins
    [timer] = loop.pending()
    timer.fire()
    assert transport.written == b"" and not transport.closed
    [rearmed] = loop.pending()
    assert rearmed is not timer and rearmed.delay == HEADER_TIMEOUT_SECONDS


def test_connection_lost_cancels_the_head_timer(connection: Connection) -> None:
    protocol, _, loop = connection
    protocol.connection_lost(None)
    assert loop.pending() == []


def test_a_refusal_writes_one_access_line_with_what_is_known(
    connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    protocol, transport, _ = connection
    target = b"/" + b"p" * LIMIT_REQUEST_LINE + b"?secret=1"
    with caplog.at_level(logging.INFO, logger="service.access"):
        protocol.data_received(b"GET " + target + b" HTTP/1.1\r\n")
    body = refused_with(transport, 414)
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "request_completed"]
    fields = cast(dict[str, Any], record.__dict__["fields"])
    assert fields["method"] == "GET"
    assert fields["path"] == "/" + "p" * (MAX_LOGGED_PATH_BYTES - 1)  # clipped, no query
    assert fields["status_code"] == 414
    assert fields["client_ip"] == "10.0.0.7"
    assert fields["error"] == body["detail"]
    assert record.levelno == logging.INFO


def test_a_refusal_gets_a_new_request_id_not_the_clients(connection: Connection) -> None:
    """The head was never accepted, so its X-Request-ID is not taken over."""
    protocol, transport, _ = connection
    fields = [(b"x-request-id", b"client-id"), field_of(LIMIT_REQUEST_FIELD_SIZE + 1)]
    protocol.data_received(head(fields=fields))
    request_id = refused_with(transport, 431)["request_id"]
    assert request_id != "client-id" and len(request_id) == 32
