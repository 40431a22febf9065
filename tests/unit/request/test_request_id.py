from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.request.request_id import accept_or_generate

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("value", [b"abc-123", b"A.b_c-9", b"x" * 64])
def test_valid_ids_are_kept(value: bytes) -> None:
    assert accept_or_generate(value) == value.decode()


@pytest.mark.parametrize(
    "value", [None, b"", b"x" * 65, b"a b", b"a\nb", b'a"b', b"a\x00", "ü".encode(), b"a/b"]
)
def test_invalid_ids_are_replaced(value: bytes | None) -> None:
    assert GENERATED.fullmatch(accept_or_generate(value))


@given(st.binary(max_size=200))
def test_result_is_always_safe(value: bytes) -> None:
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", accept_or_generate(value))


def test_forked_workers_generate_different_ids() -> None:
    """The random module reseeds in a forked child: two workers never share a sequence."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, accept_or_generate(None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert GENERATED.fullmatch(child) and child != accept_or_generate(None)
