"""BodyLimitMiddleware's read timeout, on the ASGI interface with a short timeout: a
stalled body gets 408 + Connection: close; a complete one is never timed out."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from fastapi import FastAPI, Request
from starlette.types import Message

from service.main import create_app
from service.server.body_limit import BodyLimitMiddleware

TIMEOUT_S = 0.2
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/echo",
    "raw_path": b"/echo",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
}


def echo_app() -> BodyLimitMiddleware:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/wait-for-disconnect")
    async def wait_for_disconnect(request: Request) -> dict[str, bool]:
        await request.body()
        message = await request.receive()  # after the body: only a disconnect comes
        return {"disconnected": message["type"] == "http.disconnect"}

    return BodyLimitMiddleware(app, max_body_bytes=1000, read_timeout_s=TIMEOUT_S)


async def call(
    app: BodyLimitMiddleware, path: str, incoming: asyncio.Queue[Message]
) -> list[Message]:
    """Run one request; its receive() takes from `incoming` (empty: a silent client)."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {**SCOPE, "path": path, "raw_path": path.encode()}
    await asyncio.wait_for(app(scope, incoming.get, send), timeout=5)
    return sent


def queue(*messages: Message) -> asyncio.Queue[Message]:
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    for message in messages:
        incoming.put_nowait(message)
    return incoming


def status_and_body(sent: list[Message]) -> tuple[int, dict[str, object], dict[bytes, bytes]]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), dict(start["headers"])


def test_stalled_body_gets_408_and_connection_close() -> None:
    partial = {"type": "http.request", "body": b'{"na', "more_body": True}
    sent = asyncio.run(call(echo_app(), "/echo", queue(partial)))  # then nothing more
    status, body, headers = status_and_body(sent)
    assert status == 408
    assert body == {"detail": f"request body stalled: no data for {TIMEOUT_S:g} s"}
    assert headers[b"connection"] == b"close"


def test_body_arriving_in_time_is_read_whole() -> None:
    chunks = queue(
        {"type": "http.request", "body": b"x" * 10, "more_body": True},
        {"type": "http.request", "body": b"y" * 10, "more_body": False},
    )
    status, body, _ = status_and_body(asyncio.run(call(echo_app(), "/echo", chunks)))
    assert (status, body) == (200, {"bytes": 20})


def test_waiting_after_a_complete_body_is_not_timed_out() -> None:
    async def disconnect_later() -> list[Message]:
        incoming = queue({"type": "http.request", "body": b"", "more_body": False})
        task = asyncio.ensure_future(call(echo_app(), "/wait-for-disconnect", incoming))
        await asyncio.sleep(TIMEOUT_S * 3)  # longer than the read timeout
        assert not task.done()
        incoming.put_nowait({"type": "http.disconnect"})
        return await task

    status, body, _ = status_and_body(asyncio.run(disconnect_later()))
    assert (status, body) == (200, {"disconnected": True})


def test_the_service_uses_the_documented_timeout() -> None:
    app = create_app()
    [limit] = [m for m in app.user_middleware if cast(Any, m.cls) is BodyLimitMiddleware]
    assert "read_timeout_s" not in limit.kwargs  # the default: BODY_READ_TIMEOUT_SECONDS
