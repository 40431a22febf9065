"""X-Request-ID rules: keep a well-formed incoming id, replace anything else."""

from __future__ import annotations

import os
import re

_VALID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def accept_or_generate(raw: bytes | None) -> str:
    """The incoming header value if it is 1-64 chars of A-Za-z0-9._-, else a new id."""
    if raw is not None and _VALID.fullmatch(raw):
        return raw.decode("ascii")
    return os.urandom(16).hex()
