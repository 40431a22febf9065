"""The downstream client against real local sockets: it carries the trace, the request id
and only the allowed baggage on, turns a refused or hanging connect and an answer over the
size limit into a 502 and a silent server into a 504 at its timeouts, and leaves no
connection behind."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service.data import downstream
from service.data.downstream import (
    CONNECT_TIMEOUT_SECONDS,
    DownstreamClient,
    DownstreamTimeout,
    DownstreamTooLarge,
    DownstreamUnavailable,
)
from service.request import context
from tools.testbed.support import free_port, unaccepting_port

READ_TIMEOUT_SECONDS = 0.5


class Backend:
    """A minimal HTTP/1.1 server: answers {"ping": "pong"}, after `delay_s`."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.headers: list[dict[str, str]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")[1:]
                self.headers.append(
                    {
                        k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines if line)
                    }
                )
                await asyncio.sleep(self.delay_s)
                body = json.dumps({"ping": "pong"}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


@pytest.fixture
def spans(
    sdk: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider, _ = sdk
    monkeypatch.setattr(downstream, "_tracer", provider.get_tracer("service.downstream"))
    return sdk


def idle_connections(client: DownstreamClient) -> list[bool]:
    """Whether each pooled connection is idle (httpx's pool, read for the leak check)."""
    pool = client.client._transport._pool  # type: ignore[attr-defined]
    return [connection.is_idle() for connection in pool.connections]


@pytest.mark.anyio
async def test_the_call_carries_trace_context_and_request_id(
    backend: Backend, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    client = DownstreamClient(backend.url, READ_TIMEOUT_SECONDS)
    token = context.request_id.set("req-42")
    try:
        with provider.get_tracer("t").start_as_current_span("request") as request:
            response = await client.get("/api/ping")
    finally:
        context.request_id.reset(token)
    assert response.json() == {"ping": "pong"}
    [headers] = backend.headers
    [client_span] = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    assert client_span.kind is SpanKind.CLIENT
    assert client_span.parent is not None
    assert client_span.parent.span_id == request.get_span_context().span_id
    trace_id = format(client_span.context.trace_id, "032x")
    span_id = format(client_span.context.span_id, "016x")
    # The downstream's parent is the client span (flags: sampled, and maybe random-id).
    assert headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-0")
    assert headers["x-request-id"] == "req-42"
    assert client_span.attributes is not None
    assert client_span.attributes["http.response.status_code"] == 200
    assert client_span.attributes["url.full"] == f"{backend.url}/api/ping"
    await client.close()


@pytest.mark.anyio
async def test_a_refused_connection_is_a_502_within_the_connect_timeout(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    client = DownstreamClient(f"http://127.0.0.1:{free_port()}", READ_TIMEOUT_SECONDS)
    started = time.monotonic()
    with pytest.raises(DownstreamUnavailable) as error:
        await client.get("/api/ping")
    assert time.monotonic() - started < CONNECT_TIMEOUT_SECONDS
    assert error.value.status_code == 502
    [span] = spans[1].get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert idle_connections(client) == []
    await client.close()


@pytest.mark.anyio
async def test_a_silent_downstream_is_a_504_at_the_read_timeout_and_leaks_nothing(
    backend: Backend,
) -> None:
    client = DownstreamClient(backend.url, READ_TIMEOUT_SECONDS)
    backend.delay_s = 30
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(DownstreamTimeout) as error:
            await client.get("/api/ping")
        elapsed = time.monotonic() - started
        assert READ_TIMEOUT_SECONDS <= elapsed < READ_TIMEOUT_SECONDS + 5, elapsed
        assert error.value.status_code == 504
    assert all(idle_connections(client))  # a timed-out connection is not kept in use
    backend.delay_s = 0
    assert (await client.get("/api/ping")).status_code == 200  # the pool still serves
    assert all(idle_connections(client)) and len(idle_connections(client)) <= 1
    await client.close()


@pytest.mark.anyio
async def test_a_connect_timeout_is_a_502_at_the_connect_timeout(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A downstream whose accept queue is full (not refused: connecting hangs) is down."""
    with unaccepting_port() as port:
        client = DownstreamClient(f"http://127.0.0.1:{port}", READ_TIMEOUT_SECONDS)
        started = time.monotonic()
        with pytest.raises(DownstreamUnavailable) as error:
            await client.get("/api/ping")
        elapsed = time.monotonic() - started
        await client.close()
    assert CONNECT_TIMEOUT_SECONDS <= elapsed < CONNECT_TIMEOUT_SECONDS + 2, elapsed
    assert error.value.status_code == 502 and error.value.detail == "downstream unavailable"
    assert "ConnectTimeout" in str(error.value)  # the log line's reason
    [span] = spans[1].get_finished_spans()
    assert span.attributes is not None and span.attributes["error.type"] == "ConnectTimeout"


async def serve_bytes(body: bytes, *, declared: bool) -> asyncio.Server:
    """A server answering `body`, with its Content-Length or chunked (undeclared)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if declared:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
                writer.write(body)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for start in range(0, len(body), 4096):
                    chunk = body[start : start + 4096]
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.anyio
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_over_the_limit_is_a_502_and_one_at_it_is_read(declared: bool) -> None:
    limit = 64 * 1024
    for size, fits in ((limit, True), (limit + 1, False)):
        server = await serve_bytes(b"x" * size, declared=declared)
        port = server.sockets[0].getsockname()[1]
        client = DownstreamClient(f"http://127.0.0.1:{port}", 5, max_body_bytes=limit)
        try:
            if fits:
                assert len((await client.get("/api/ping")).content) == limit
            else:
                with pytest.raises(DownstreamTooLarge) as error:
                    await client.get("/api/ping")
                assert error.value.status_code == 502
                assert error.value.detail == "downstream answer too large"
                assert idle_connections(client) == []  # the rest is not read: closed
        finally:
            await client.close()
            server.close()


@pytest.mark.anyio
async def test_only_allowed_baggage_goes_downstream(backend: Backend) -> None:
    client = DownstreamClient(backend.url, READ_TIMEOUT_SECONDS, baggage_keys=frozenset({"tenant"}))
    ctx = baggage.set_baggage("user_id", "admin")
    ctx = baggage.set_baggage("tenant", "t-1", ctx)
    token = otel_context.attach(ctx)
    try:
        await client.get("/api/ping")
        otel_context.detach(token)
        token = otel_context.attach(baggage.set_baggage("role", "superuser"))
        await client.get("/api/ping")
    finally:
        otel_context.detach(token)
        await client.close()
    assert backend.headers[0]["baggage"] == "tenant=t-1"
    assert "baggage" not in backend.headers[1]
