"""Per-request context carried by contextvars (each asyncio task sees its own copy)."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
# Inside a request, log lines take trace_id/span_id from the current OpenTelemetry span
# (the OTel context is itself a contextvar). These two let work that runs outside any
# span (a background task started by a request) carry those ids into its log lines.
trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)
span_id: ContextVar[str | None] = ContextVar("span_id", default=None)
