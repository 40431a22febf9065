"""Per-request context carried by contextvars (each asyncio task sees its own copy)."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
# Trace and span ids of the request's server span, as lower-case hex.
trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)
span_id: ContextVar[str | None] = ContextVar("span_id", default=None)
