"""The one error shape: error_body and encode_error take the current request id unless
told, keep extra fields after the two fixed ones, and send_error sends one complete JSON
response through ASGI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message

from service.request import context
from service.request.errors import encode_error, error_body, send_error


def test_error_body_takes_the_current_request_id() -> None:
    token = context.request_id.set("req-1")
    try:
        assert error_body("nope") == {"detail": "nope", "request_id": "req-1"}
    finally:
        context.request_id.reset(token)


def test_error_body_without_a_request_has_a_null_id() -> None:
    assert error_body("nope") == {"detail": "nope", "request_id": None}


def test_an_explicit_request_id_wins_over_the_current_one() -> None:
    token = context.request_id.set("current")
    try:
        assert error_body("x", "given")["request_id"] == "given"
    finally:
        context.request_id.reset(token)


def test_extra_fields_follow_detail_and_request_id() -> None:
    body = error_body({"field": "name"}, "r", retry_after=5)
    assert list(body) == ["detail", "request_id", "retry_after"]
    assert body["detail"] == {"field": "name"} and body["retry_after"] == 5


def test_encode_error_is_the_json_of_error_body() -> None:
    assert json.loads(encode_error("é", "r", retry_after=1)) == error_body("é", "r", retry_after=1)


def test_send_error_sends_a_complete_json_response() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        context.request_id.set("req-9")
        await send_error(send, 503, "draining", [(b"retry-after", b"5")], retry_after=5)

    asyncio.run(scenario())
    start, body = sent
    assert start["type"] == "http.response.start" and start["status"] == 503
    headers: dict[bytes, bytes] = dict(start["headers"])
    payload: dict[str, Any] = json.loads(body["body"])
    assert payload == {"detail": "draining", "request_id": "req-9", "retry_after": 5}
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    assert headers[b"retry-after"] == b"5"
    assert body["type"] == "http.response.body" and not body.get("more_body", False)
