"""Schemathesis hooks for the OpenAPI fuzzing test (loaded through SCHEMATHESIS_HOOKS).

/api/slow and /api/long-task sleep for what they are asked (up to 60 s and 600 s; 5 s by
default for long-task): right before each call, a valid or missing duration is
shortened so a few hundred examples stay fast. Out-of-range and malformed values are
left alone, so they still test the 422 path."""

from __future__ import annotations

from typing import Any

import schemathesis

# path: (parameter, largest valid value, value it is shortened to)
SLEEPERS = {"/api/slow": ("ms", 60_000, "20"), "/api/long-task": ("seconds", 600, "0.02")}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    sleeper = SLEEPERS.get(case.operation.path)
    if sleeper is None:
        return
    name, largest, short = sleeper
    query = dict(case.query or {})
    value = query.get(name)
    number = _number(value)
    if value is None or (number is not None and 0 < number <= largest):
        query[name] = short
        case.query = query
