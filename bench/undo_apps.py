# Usage: gunicorn -c python:service.gunicorn_conf "bench.undo_apps:build('metrics')"
"""Full observability with one of issue 28's cuts undone, for A/B variants in the same
`make bench` run (bench/README.md, "What each cut bought"):
  gc        the worker keeps the collector's defaults: no gc.freeze after start-up, the
            young threshold at 700 (service/server/worker.py tune_garbage_collector)
  metrics   the request's histogram and gauge updates through prometheus_client's own
            inc/observe instead of FileValue (service/telemetry/metrics.py)
  lines     the access line and format_event's lines encoded as a whole entry instead of
            written as text around the fields (service/telemetry/logs.py)
  encoder   the OTLP encoder reads a ServerSpan through ReadableSpan's properties, as it
            reads any other span (service/telemetry/otlp_encoding.py)
Each is undone by replacing the product's function or flag at import time, in the worker,
before the app serves: the code that runs is the code before the cut."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.main import create_app
from service.server import worker
from service.telemetry import otlp_encoding
from service.telemetry.logs import JsonFormatter, access_fields

CUTS = ("gc", "metrics", "lines", "encoder")


class NotAServerSpan:
    """What otlp_encoding compares a span's type with: nothing is one, so every span takes
    the properties' path."""


def entry_access(
    self: JsonFormatter,
    levelname: str,
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    client_ip: str | None,
    user_agent: str,
) -> str:
    fields = access_fields(method, path, status, duration_ms, client_ip, user_agent)
    return self.format_event_entry(levelname, "request_completed", fields)


def entry_event(self: JsonFormatter, levelname: str, event: str, fields: dict[str, Any]) -> str:
    return self.format_event_entry(levelname, event, fields)


def build(cut: str) -> FastAPI:
    if cut not in CUTS:
        raise ValueError(f"unknown cut {cut!r}; known: {', '.join(CUTS)}")
    if cut == "gc":
        worker.tune_garbage_collector = lambda: None
    elif cut == "lines":
        JsonFormatter.format_access = entry_access  # type: ignore[method-assign]
        JsonFormatter.format_event = entry_event  # type: ignore[method-assign]
    elif cut == "encoder":
        vars(otlp_encoding)["ServerSpan"] = NotAServerSpan
    app = create_app()
    if cut == "metrics" and app.state.metrics is not None:
        app.state.metrics.multiprocess = False  # the children themselves, as before
        app.state.metrics.forget_children()
    return app
