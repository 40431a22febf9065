"""Request-head limits and a header timeout for uvicorn's httptools protocol.

Gunicorn's limit_request_* settings do not reach uvicorn's workers, and uvicorn has no
header timeout: service.gunicorn_conf installs BoundedHttpToolsProtocol in every worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.config import get_settings
from service.request import context
from service.request.errors import encode_error
from service.request.request_id import accept_or_generate
from service.telemetry.access_log import access_level, write_access_line

# uvicorn's workers ignore Gunicorn's limit_request_* settings and have no header
# timeout (measured: a 10 MB header was read and answered 200, and a client sending a
# byte a second, or nothing at all, kept its connection forever). Every worker parses
# with BoundedHttpToolsProtocol (installed by post_worker_init), which enforces:
LIMIT_REQUEST_LINE = 8190  # longest request target (URL), in bytes; longer: 414
LIMIT_REQUEST_FIELDS = 100  # most header fields; more: 431
LIMIT_REQUEST_FIELD_SIZE = 8190  # longest "name: value" field, in bytes; longer: 431
MAX_REQUEST_HEAD_BYTES = 65536  # request line and headers together; larger: 431
# The head must be complete this many seconds after the connection opened (on a
# kept-alive connection: after its first byte), else 408 and the connection closes; a
# connection that never sends a byte is closed then too. Bodies: MAX_REQUEST_BODY_BYTES
# (413, service/server/body_limit.py).
HEADER_TIMEOUT_SECONDS = 10
# While a request body is incomplete, each read must bring data within this many seconds
# (nginx's client_body_timeout), else 408 and the connection closes: a stalled upload
# cannot hold a connection, or a drain, for long (service/server/body_limit.py).
BODY_READ_TIMEOUT_SECONDS = 10


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing; see send_400_response."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the request-head limits and header timeout above.

    Parser callbacks refuse a request by raising _HeadRefused: httptools turns that into
    an HttpParserError, uvicorn logs `invalid_http_request_received` and calls
    send_400_response, which sends the refusal's own status instead of a 400."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timer: asyncio.TimerHandle | None = None
        self.in_head = True  # between requests, or inside a request head
        self.head_seen = False  # a byte of the current head arrived
        self.head_bytes = 0  # of the URL and complete header fields
        self.chunk_bytes = 0  # of chunks that lay wholly inside the head
        self.head_fields = 0
        self.messages_begun = 0
        self.head_started: float | None = None
        self.head_begun = False  # the current head's request line has begun
        self.refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            if not self.head_seen:
                self.head_seen = True
                self.head_started = time.monotonic()
            self._arm_head_timer()
        begun = self.messages_begun
        super().data_received(data)
        if not self.in_head or self.refusal is not None or self.transport.is_closing():
            return
        # httptools buffers a header field until it is complete: bound that buffer by
        # counting the chunks that lie wholly inside one head (so several pipelined
        # requests in one chunk are never summed).
        if self.messages_begun == begun:
            self.chunk_bytes += len(data)
        if self.chunk_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refuse(431, f"request head larger than {MAX_REQUEST_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.messages_begun += 1
        self.head_begun = True
        self.in_head = True
        self.head_bytes = self.chunk_bytes = self.head_fields = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self.head_bytes += len(url)
        if len(self.url) > LIMIT_REQUEST_LINE:
            self.refusal = (414, f"request target longer than {LIMIT_REQUEST_LINE} bytes")
            raise _HeadRefused

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_fields += 1
        if self.head_fields > LIMIT_REQUEST_FIELDS:
            self.refusal = (431, f"more than {LIMIT_REQUEST_FIELDS} header fields")
            raise _HeadRefused
        if len(name) + len(value) + 2 > LIMIT_REQUEST_FIELD_SIZE:
            self.refusal = (431, f"header field longer than {LIMIT_REQUEST_FIELD_SIZE} bytes")
            raise _HeadRefused
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_REQUEST_HEAD_BYTES:
            self.refusal = (431, f"request head larger than {MAX_REQUEST_HEAD_BYTES} bytes")
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_seen = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True
        self.head_begun = False
        self.chunk_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self.refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*self.refusal)

    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a response is still being written: not idle
        elif self.head_seen:
            self._refuse(408, f"request head not complete after {HEADER_TIMEOUT_SECONDS} s")
        else:
            self.transport.close()  # never sent a byte

    def _refuse(self, status: int, detail: str) -> None:
        """Answer status with a JSON body and close, without involving the app."""
        self.refusal = (status, detail)
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        request_id = accept_or_generate(None)
        if get_settings().observability == "full":
            token = context.request_id.set(request_id)
            try:
                self._log_refusal(status, detail)
            finally:
                context.request_id.reset(token)
        body = encode_error(detail, request_id)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"x-request-id: %s\r\n" % request_id.encode(),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()

    def _log_refusal(self, status: int, detail: str) -> None:
        """The access line (request_completed) of a request the app never saw, with
        what is known of it and the reason in `error`."""
        method, url, agent = None, b"", b""
        if self.head_begun:  # else only stray bytes (CR LF) arrived since the last request
            url = self.url
            agent = next((v for n, v in self.headers if n == b"user-agent"), b"")
            if url:  # the method is parsed before the target
                method = self.parser.get_method().decode("latin-1")
        started = self.head_started or time.monotonic()
        path = url.partition(b"?")[0][:MAX_LOGGED_PATH_BYTES].decode("latin-1") or None
        fields = {
            "method": method,
            "path": path,
            "status_code": status,
            "duration_ms": round((time.monotonic() - started) * 1000, 2),
            "client_ip": self.client[0] if self.client else None,
            "user_agent": agent[:MAX_LOGGED_PATH_BYTES].decode("latin-1"),
            "error": detail,
        }
        write_access_line(access_level(status, path or ""), fields)


MAX_LOGGED_PATH_BYTES = 512
