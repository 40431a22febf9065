"""Error classification: every way a request can fail without a response has one kind."""

from __future__ import annotations

import asyncio
import errno

import pytest

from tools.drill.errors import (
    ErrorKind,
    PhaseTimeoutError,
    ProtocolError,
    RemoteClosedError,
    classify,
)


@pytest.mark.parametrize(
    ("exc", "kind", "detail"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ErrorKind.REFUSED, "econnrefused"),
        (ConnectionRefusedError(), ErrorKind.REFUSED, "econnrefused"),
        (OSError(errno.ECONNREFUSED, "refused"), ErrorKind.REFUSED, "econnrefused"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), ErrorKind.RESET, "econnreset"),
        (BrokenPipeError(errno.EPIPE, "pipe"), ErrorKind.RESET, "epipe"),
        (ConnectionResetError(), ErrorKind.RESET, "ConnectionResetError"),
        (RemoteClosedError(got_bytes=False), ErrorKind.RESET, "closed_before_response"),
        (RemoteClosedError(got_bytes=True), ErrorKind.RESET, "closed_mid_response"),
        (asyncio.IncompleteReadError(b"", 10), ErrorKind.RESET, "closed_before_response"),
        (asyncio.IncompleteReadError(b"HTTP/1.1", 10), ErrorKind.RESET, "closed_mid_response"),
        (PhaseTimeoutError("connect"), ErrorKind.TIMEOUT, "connect"),
        (PhaseTimeoutError("response"), ErrorKind.TIMEOUT, "response"),
        (TimeoutError(), ErrorKind.TIMEOUT, "unspecified"),
        (OSError(errno.ETIMEDOUT, "timed out"), ErrorKind.TIMEOUT, "etimedout"),
        (ProtocolError("bad"), ErrorKind.PROTOCOL, "ProtocolError"),
        (asyncio.LimitOverrunError("long", 0), ErrorKind.PROTOCOL, "LimitOverrunError"),
        (OSError(errno.EHOSTUNREACH, "no route"), ErrorKind.OTHER, "OSError"),
        (ValueError("bug"), ErrorKind.OTHER, "ValueError"),
    ],
)
def test_classify(exc: BaseException, kind: ErrorKind, detail: str) -> None:
    failure = classify(exc)
    assert (failure.kind, failure.detail) == (kind, detail)


def test_kinds_are_the_reported_names() -> None:
    assert [k.value for k in ErrorKind] == ["refused", "reset", "timeout", "protocol", "other"]
