# Usage: OBSERVABILITY=off gunicorn -c python:service.gunicorn_conf 'bench.least_app:least_app()'
"""The "least" benchmark variant: full's observable work per request done the least way a
Python process can, on the real server, with none of the product's observability code
and none of the OpenTelemetry SDK or prometheus_client (issue 28: a reference for the
limit must be the least the work can cost, not our components rearranged; the older
`floor` variant, bench/floor_app.py, keeps our span, processor, exporter and metrics).

The product's app with OBSERVABILITY=off (routes, shutdown and body-limit middleware, the
database and the cache, nothing observed), and:
- the five jobs: bench/floors.py's FloorLayer, outermost, where full has its layer (the
  request id kept or made and echoed; the server span as a tuple; one context variable
  with the ids a log line needs; the access line with the product's fields, one f-string
  and one write(2); the duration histogram and the active requests as plain ints);
- the Redis command spans (a cache hit on /api/items/{id}: one GET per request): a tuple
  under the request's span, and the cache's hit or miss counted as an int;
- the export: a daemon thread per worker that takes the tuples 512 at a time (it polls
  every POLL_S: no signal per span), encodes them with FloorEncoder (one resource, one
  scope; the server and the client spans as two ResourceSpans of one request body) and
  posts them with http.client on one kept-alive connection to the variant's receiver.
What it leaves out: the SQL statement spans (the measured item is a cache hit: a miss is
the seeding request only), metrics exposition (the ints are never scraped: a scrape's
cost is not per request), retries, and everything ObservabilityMiddleware does for
errors (an exception escapes to uvicorn)."""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware import Middleware

from bench.floors import (
    CLIENT_KIND,
    JOB_NAMES,
    FloorEncoder,
    FloorLayer,
    SpanRecord,
    floor_ids,
)
from service.config import get_settings
from service.data.cache import Cache
from service.main import create_app
from service.telemetry.metrics import DURATION_BUCKETS, KNOWN_METHODS

BATCH = 512  # spans per post (the BatchSpanProcessor's default)
QUEUE = 2048  # spans waiting at most (the same processor's default queue)
POLL_S = 0.1
SCOPE_NAME = "service.http"


class SpanPoster:
    """The export floor: span tuples from two bounded deques, encoded and posted in a
    daemon thread."""

    def __init__(self, endpoint: str, service_name: str) -> None:
        url = urlsplit(endpoint.rstrip("/") + "/v1/traces")
        self.host, self.port, self.path = url.hostname or "localhost", url.port or 4318, url.path
        self.server_spans: deque[SpanRecord] = deque(maxlen=QUEUE)
        self.client_spans: deque[SpanRecord] = deque(maxlen=QUEUE)
        self.encoder = FloorEncoder({"service.name": service_name}, SCOPE_NAME)
        self.connection: http.client.HTTPConnection | None = None
        self.lock = threading.Lock()  # the thread's posts and the exit's flush
        self.stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self.run, name="least-span-poster", daemon=True).start()

    def run(self) -> None:
        while not self.stopped.wait(POLL_S):
            self.flush()

    def flush(self) -> None:
        with self.lock:
            while self.server_spans or self.client_spans:
                self.post(take(self.server_spans), take(self.client_spans))

    def post(self, server: list[SpanRecord], client: list[SpanRecord]) -> None:
        body = self.encoder.encode(server) if server else b""
        if client:  # a second ResourceSpans: concatenated messages merge their fields
            body += self.encoder.encode(client, CLIENT_KIND)
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {"Content-Type": "application/x-protobuf"}
        try:
            self.connection.request("POST", self.path, body, headers)
            self.connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # dropped, as an exporter without retries would
            self.connection = None

    def stop(self) -> None:
        self.stopped.set()
        self.flush()


def take(spans: deque[SpanRecord]) -> list[SpanRecord]:
    """Up to BATCH of the oldest spans."""
    return [spans.popleft() for _ in range(min(BATCH, len(spans)))]


def traced_cache(cache: Cache, spans: deque[SpanRecord], reads: list[int]) -> None:
    """The cache's GET and SET each make a CLIENT span tuple under the request's span
    (FloorLayer's ids), and a read counts as a hit or a miss."""
    get, put = cache.get, cache.set
    server = {"db.system.name": "redis", **cache.server}

    def record(command: str, started: int) -> None:
        ids = floor_ids.get()
        if ids is not None and ids[2]:
            attributes = {"db.operation.name": command, **server}
            span_id = random.getrandbits(64) or 1
            spans.append((ids[1], span_id, ids[2], command, started, time.time_ns(), attributes, 0))

    async def get_traced(key: str) -> str | None:
        started = time.time_ns()
        value = await get(key)
        record("GET", started)
        reads[value is not None] += 1
        return value

    async def set_traced(key: str, value: str) -> None:
        started = time.time_ns()
        await put(key, value)
        record("SET", started)

    cache.get = get_traced  # type: ignore[method-assign]
    cache.set = set_traced  # type: ignore[method-assign]


def least_app() -> FastAPI:
    settings = get_settings()
    if settings.observability != "off":
        raise RuntimeError("the least variant runs with OBSERVABILITY=off and does the work itself")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        raise RuntimeError("the least variant exports: set OTEL_EXPORTER_OTLP_ENDPOINT")
    app = create_app(settings)
    poster = SpanPoster(endpoint, os.environ.get("OTEL_SERVICE_NAME", settings.service_name))
    layer = Middleware(
        FloorLayer,
        jobs=frozenset(JOB_NAMES),
        log_fd=1,
        buckets=DURATION_BUCKETS,
        known_methods=KNOWN_METHODS,
        spans=poster.server_spans,
    )
    app.user_middleware = [layer, *app.user_middleware]  # the outermost, where full's is
    product_lifespan = app.router.lifespan_context
    reads = [0, 0]  # cache misses, hits

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with product_lifespan(app_) as state:
            cache = app.state.resources.cache
            if cache is not None:
                traced_cache(cache, poster.client_spans, reads)
            poster.start()  # in the worker: a thread does not survive the fork
            try:
                yield state
            finally:
                poster.stop()

    app.router.lifespan_context = lifespan
    return app
