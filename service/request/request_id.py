"""X-Request-ID rules: keep a well-formed incoming id, replace anything else."""

from __future__ import annotations

import re
from random import getrandbits

_VALID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def accept_or_generate(raw: bytes | None) -> str:
    """The incoming header value if it is 1-64 chars of A-Za-z0-9._-, else a new id: 32
    hex digits from the random module, as the SDK makes trace ids (an id, not a secret;
    reseeded in every forked worker), without os.urandom's system call per request."""
    if raw is not None and _VALID.fullmatch(raw):
        return raw.decode("ascii")
    return getrandbits(128).to_bytes(16, "big").hex()
