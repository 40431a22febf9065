"""The one shape of every error answer: {"detail": ..., "request_id": ..., **extra}.

request_id is the X-Request-ID of the same response (the access-log middleware sets
both); error_body builds the JSON, send_error sends it from pure ASGI middleware."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send

from service.request import context

CONNECTION_CLOSE = (b"connection", b"close")


def error_body(detail: Any, request_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """The error's JSON object; request_id defaults to the current request's."""
    if request_id is None:
        request_id = context.request_id.get()
    return {"detail": detail, "request_id": request_id, **extra}


def encode_error(detail: Any, request_id: str | None = None, **extra: Any) -> bytes:
    return json.dumps(error_body(detail, request_id, **extra)).encode()


async def send_error(
    send: Send,
    status: int,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> None:
    """A complete JSON error response through an ASGI `send`."""
    body = encode_error(detail, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
