"""Per-request context carried by contextvars (each asyncio task sees its own copy).

Log lines take request_id and user_id from here, and trace_id/span_id from the current
OpenTelemetry span (the OTel context is itself a contextvar)."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
# Health probes: never traced, logged at debug, served while draining (live stays 200,
# ready reports the drain itself). The health router's prefix.
PROBE_PREFIX = "/health/"
