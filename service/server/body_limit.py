"""BodyLimitMiddleware: request bodies above MAX_REQUEST_BODY_BYTES get a 413, stalled
ones a 408.

uvicorn has no body size limit or body timeout of its own. A declared Content-Length
above the limit is refused before the app reads a byte; a body without one (chunked) is
counted as the app reads it and the read fails with 413 once the limit is passed. A read
that waits longer than BODY_READ_TIMEOUT_SECONDS for more of an incomplete body fails
with 408. Either way the connection is closed, so the rest of the body is not read."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request.errors import CONNECTION_CLOSE, send_error
from service.server.http_limits import BODY_READ_TIMEOUT_SECONDS


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        read_timeout_s: float = BODY_READ_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s
        self.detail = f"request body larger than {max_body_bytes} bytes"
        self.timeout_detail = f"request body stalled: no data for {read_timeout_s:g} s"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                # The HTTP parser refuses a malformed Content-Length; anything else that
                # is not plain digits is left to the counting below.
                digits = value.strip()
                if digits.isdigit() and (len(digits) > 19 or int(digits) > self.max_body_bytes):
                    await self._refuse(send)
                    return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes
        body_complete = False

        async def counting_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:  # e.g. waiting for http.disconnect: no timeout
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, self.timeout_detail, headers={"Connection": "close"}
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI and Starlette pass HTTPException through their body
                    # parsing, so the client gets this 413 (not a 400 or a 500).
                    raise HTTPException(413, self.detail, headers={"Connection": "close"})
            return message

        return counting_receive

    async def _refuse(self, send: Send) -> None:
        await send_error(send, 413, self.detail, [CONNECTION_CLOSE])
