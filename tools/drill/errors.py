"""Classify why a request failed without an HTTP response: refused, reset, timeout, ..."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    """Connection-level failure kinds, as the drill reports them."""

    REFUSED = "refused"  # nobody listening: ECONNREFUSED
    RESET = "reset"  # the peer reset or closed the connection before the response ended
    TIMEOUT = "timeout"  # connect or response deadline passed
    PROTOCOL = "protocol"  # bytes arrived but they were not a valid HTTP/1.1 response
    OTHER = "other"  # anything else (reported with its type, never silently ignored)


class RemoteClosedError(ConnectionError):
    """The peer closed the connection: before any byte of the response, or in the middle."""

    def __init__(self, *, got_bytes: bool) -> None:
        self.got_bytes = got_bytes
        super().__init__("closed mid-response" if got_bytes else "closed without response")


class ProtocolError(Exception):
    """The response could not be parsed as HTTP/1.1."""


class PhaseTimeoutError(TimeoutError):
    """A deadline passed; `phase` says which one ("connect" or "response")."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        super().__init__(f"{phase} timeout")


@dataclass(frozen=True)
class Failure:
    kind: ErrorKind
    detail: str  # a short, stable label such as "closed_before_response" or "connect"


_ERRNO_KIND = {
    errno.ECONNREFUSED: (ErrorKind.REFUSED, "econnrefused"),
    errno.ECONNRESET: (ErrorKind.RESET, "econnreset"),
    errno.EPIPE: (ErrorKind.RESET, "epipe"),
    errno.ECONNABORTED: (ErrorKind.RESET, "econnaborted"),
    errno.ETIMEDOUT: (ErrorKind.TIMEOUT, "etimedout"),
}


def classify(exc: BaseException) -> Failure:
    """Map an exception raised while sending a request or reading its response to a Failure."""
    if isinstance(exc, PhaseTimeoutError):
        return Failure(ErrorKind.TIMEOUT, exc.phase)
    if isinstance(exc, RemoteClosedError):
        return Failure(
            ErrorKind.RESET, "closed_mid_response" if exc.got_bytes else "closed_before_response"
        )
    if isinstance(exc, asyncio.IncompleteReadError):
        return Failure(
            ErrorKind.RESET, "closed_mid_response" if exc.partial else "closed_before_response"
        )
    if isinstance(exc, ProtocolError | asyncio.LimitOverrunError):
        return Failure(ErrorKind.PROTOCOL, type(exc).__name__)
    if isinstance(exc, OSError) and exc.errno in _ERRNO_KIND:
        kind, detail = _ERRNO_KIND[exc.errno]
        return Failure(kind, detail)
    if isinstance(exc, ConnectionRefusedError):
        return Failure(ErrorKind.REFUSED, "econnrefused")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return Failure(ErrorKind.RESET, type(exc).__name__)
    if isinstance(exc, TimeoutError):
        return Failure(ErrorKind.TIMEOUT, "unspecified")
    return Failure(ErrorKind.OTHER, type(exc).__name__)
