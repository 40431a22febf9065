# Usage: .venv/bin/python -m bench.formatter_speed [--lines N]   (prints one JSON object)
"""JSON log lines per second on one core: the formatter alone, and the whole access-log
path (logger, handler, formatter, one write(2) to /dev/null), inside a recording span
with a request id, as in a real request. Rates are per CPU second of this process,
pinned to one core, so other load on the machine does not count against it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from service.request import context
from service.telemetry.access_log import log_request
from service.telemetry.logs import JsonFormatter, JsonLineHandler

ROUNDS = 5
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/api/items/1",
    "client": ("127.0.0.1", 50000),
    "headers": [],
}


def lines_per_cpu_s(write_line: Callable[[], object], lines: int) -> float:
    """Median over ROUNDS of lines per CPU second."""
    rates = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(lines):
            write_line()
        rates.append(lines / max(time.process_time() - started, 1e-9))
    return statistics.median(rates)


def measure(lines: int) -> dict[str, Any]:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    devnull = os.open(os.devnull, os.O_WRONLY)
    handler = JsonLineHandler(devnull)
    handler.setFormatter(JsonFormatter("api"))
    logger = logging.getLogger("service.access")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    record = logging.makeLogRecord({"name": "service.access", "levelname": "INFO", "levelno": 20})
    record.msg = record.event = "request_completed"
    record.fields = {
        "method": "GET",
        "path": "/api/items/1",
        "status_code": 200,
        "duration_ms": 1.23,
        "client_ip": "127.0.0.1",
        "user_agent": "wrk/4.1.0",
    }
    formatter = JsonFormatter("api")
    tracer = TracerProvider().get_tracer("bench")
    context.request_id.set("0123456789abcdef0123456789abcdef")
    with tracer.start_as_current_span("GET /api/items/{item_id}", kind=SpanKind.SERVER):
        format_rate = lines_per_cpu_s(lambda: formatter.format(record), lines)
        access_rate = lines_per_cpu_s(
            lambda: log_request(SCOPE, 200, 1.23, "wrk/4.1.0", 500), lines
        )
        sample = formatter.format(record)
    os.close(devnull)
    return {
        "lines_per_round": lines,
        "formatter_lines_per_cpu_s": round(format_rate),
        "access_log_lines_per_cpu_s": round(access_rate),
        "sample_line": sample,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000, help="lines per round")
    args = parser.parse_args()
    print(json.dumps(measure(args.lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
