"""A minimal HTTP/1.1 client over asyncio streams: one request at a time per connection.

Light enough to send a few hundred requests per second from one core without starving the
servers on the same machine, and exact about failures: every exception keeps its cause so
`errors.classify` can tell a refused connection from a reset one or from a timeout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tools.drill.errors import PhaseTimeoutError, ProtocolError, RemoteClosedError

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    keep_alive: bool


@dataclass(frozen=True)
class Head:
    version: str
    status: int
    headers: dict[str, str]


def parse_head(raw: bytes) -> Head:
    """Parse a status line and header lines (raw ends before the blank line)."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise ProtocolError("undecodable head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line: {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return Head(version=parts[0], status=int(parts[1]), headers=headers)


def keeps_alive(head: Head) -> bool:
    """Whether the connection may carry another request after this response."""
    tokens = {t.strip().lower() for t in head.headers.get("connection", "").split(",")}
    if head.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def body_framing(head: Head, method: str) -> tuple[str, int]:
    """How the body is delimited: ("none", 0), ("length", n), ("chunked", 0) or ("eof", 0)."""
    if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
        return ("none", 0)
    if "chunked" in head.headers.get("transfer-encoding", "").lower():
        return ("chunked", 0)
    if "content-length" in head.headers:
        value = head.headers["content-length"]
        if not value.isdigit() or int(value) > MAX_BODY_BYTES:
            raise ProtocolError(f"bad content-length: {value[:40]!r}")
        return ("length", int(value))
    return ("eof", 0)


def render_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: fastapi-app-drill"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: int = 0
    opened_at: float = field(default_factory=time.monotonic)

    def reusable(self) -> bool:
        """False when the peer already closed it (or sent unsolicited bytes) while idle.

        The same check real clients make before reusing a pooled connection; what it cannot
        see (a close racing with our write) is reported as a reset, never retried.
        """
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and not getattr(self.reader, "_buffer", b"")  # no public way to peek
        )

    def close(self) -> None:
        self.writer.close()


async def connect(host: str, port: int, timeout_s: float) -> Connection:
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADER_BYTES)
    except TimeoutError as exc:
        raise PhaseTimeoutError("connect") from exc
    return Connection(reader, writer)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise ProtocolError(f"bad chunk size: {size_text[:20]!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise ProtocolError("body too large")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


async def _read_response(conn: Connection, method: str) -> Response:
    reader = conn.reader
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise RemoteClosedError(got_bytes=bool(exc.partial)) from exc
    head = parse_head(raw[:-4])
    try:
        kind, length = body_framing(head, method)
        if kind == "length":
            body = await reader.readexactly(length)
        elif kind == "chunked":
            body = await _read_chunked(reader)
        elif kind == "eof":
            body = b""
            while chunk := await reader.read(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ProtocolError("body too large")
        else:
            body = b""
    except asyncio.IncompleteReadError as exc:
        raise RemoteClosedError(got_bytes=True) from exc
    return Response(
        status=head.status,
        headers=head.headers,
        body=body,
        keep_alive=keeps_alive(head) and kind != "eof",
    )


async def request(conn: Connection, data: bytes, method: str, timeout_s: float) -> Response:
    """Send one request (already rendered) and read its whole response."""
    conn.requests += 1
    try:
        async with asyncio.timeout(timeout_s):
            conn.writer.write(data)
            await conn.writer.drain()
            return await _read_response(conn, method)
    except TimeoutError as exc:
        if isinstance(exc, PhaseTimeoutError):
            raise
        raise PhaseTimeoutError("response") from exc
