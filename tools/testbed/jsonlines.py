"""The app's logs as JSON Lines: one JSON object per line, each line ended by "\\n".

Lines end at "\\n" only: str.splitlines() would also split at "\\r", U+2028 and the like,
which a reader must not take for the end of a record.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json_line(line: str) -> dict[str, Any] | None:
    """The line as a JSON object; None when it is not one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of text as a JSON object; fails naming the first line that is not one,
    or a last line without its newline (a record cut short)."""
    if not text:
        return []
    *lines, rest = text.split("\n")
    assert rest == "", f"line {len(lines) + 1} has no newline: {rest[:300]!r}"
    records = []
    for number, line in enumerate(lines, 1):
        record = parse_json_line(line)
        assert record is not None, f"line {number} is not a JSON object: {line[:300]!r}"
        records.append(record)
    return records
