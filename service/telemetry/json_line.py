"""One JSON object per line, cheaply: the encoder, the timestamp, and the bounds that keep
a line one atomic write (service/telemetry/logs.py formats records with them)."""

from __future__ import annotations

import json
import select
import time
from collections.abc import Callable
from typing import Any

# The log schema's keys, first in every line (docs/architecture.md).
SCHEMA_KEYS = ("timestamp", "level", "message", "service", "request_id")
# One record is one write(2) of at most PIPE_BUF bytes, newline included: POSIX makes
# such a write to a pipe atomic, so lines from several workers sharing stdout never
# interleave. Longer records (deep tracebacks) are shortened in the middle.
MAX_LINE_BYTES = select.PIPE_BUF - 1
# Line breaks to Unicode-aware readers (str.splitlines, older JavaScript) that JSON
# leaves raw with ensure_ascii=False: escaped, so client text cannot split a line.
UNICODE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def line_encoder() -> Callable[[Any], str]:
    """json.dumps(o, default=str, ensure_ascii=False, separators=(",", ":")), without
    building an encoder for every line: the C encoder made once. JSONEncoder.encode
    is the fallback where the C accelerator or its signature differs."""
    encoder = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        # markers=None: no circular-reference check (a cycle fails either way, and a
        # failing record goes to Handler.handleError as before).
        c_encode = make(
            None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True
        )
        sample = {"a": [1, 2.5, None, True, "é\n"], "b": {"c": object}}
        if "".join(c_encode(sample, 0)) != encoder.encode(sample):
            return encoder.encode
    except TypeError:
        return encoder.encode

    def encode(entry: Any) -> str:
        return "".join(c_encode(entry, 0))

    return encode


encode = line_encoder()
# What that encoder writes for a str (ensure_ascii=False): the C function where there is one.
json_string = json.encoder.encode_basestring


def bounded(entry: dict[str, Any], line: str) -> str:
    """Shrink the longest string fields until the encoded line fits MAX_LINE_BYTES."""
    while utf8_size(line) > MAX_LINE_BYTES:
        key = max(
            (k for k in entry if k not in SCHEMA_KEYS and isinstance(entry[k], str)),
            key=lambda k: len(entry[k]),
            default=None,
        )
        if key is None or len(entry[key]) < 64:
            break
        entry[key] = clip(entry[key], len(entry[key]) // 2)
        entry["truncated"] = True
        line = encode(entry).translate(UNICODE_BREAKS)
    if utf8_size(line) > MAX_LINE_BYTES:  # many small fields: keep the schema only
        kept = {k: entry[k] for k in (*SCHEMA_KEYS, "trace_id", "span_id") if k in entry}
        line = json.dumps({**kept, "truncated": True}, default=str, separators=(",", ":"))
    return line


def utf8_size(line: str) -> int:
    """Bytes the handler writes ("replace" as in JsonLineHandler: lone surrogates)."""
    return len(line.encode("utf-8", "replace"))


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ...[{len(text) - limit} chars cut]... {text[-half:]}"


_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))
# The formatted whole second of the last line: lines come many to a second.
_last_second: tuple[int, str] = (-1, "")


def rfc3339(created: float) -> str:
    global _last_second
    second = int(created)
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, prefix)  # one tuple: threads see both or neither
    return prefix + _MILLIS[int(created * 1000) % 1000]
