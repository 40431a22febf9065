# Usage: OBSERVABILITY=full gunicorn -c python:service.gunicorn_conf \
#   "bench.component_app:build('span', 'log_context')"
"""The product app with some of ObservabilityMiddleware's jobs only, for the per-component
variants of `make bench` (job-request-id, job-span, ...: bench/run.py says which jobs and
settings each has). Every other setting comes from the environment as usual.

Each worker logs one `bench_component_app` line once its lifespan has started: the jobs
it runs and whether its Redis commands are traced, so the run can check that a variant
is what it claims to be without anything per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.main import create_app
from service.telemetry.logs import get_logger
from service.telemetry.observability import JOBS

log = get_logger("bench.component_app")
EVENT = "bench_component_app"


def build(*jobs: str) -> FastAPI:
    chosen = frozenset(jobs)
    unknown = chosen - JOBS
    if unknown:  # the middleware would refuse them too, but only once the app is built
        raise ValueError(f"unknown observability jobs {sorted(unknown)}; known: {sorted(JOBS)}")
    app = create_app(observability_jobs=chosen)
    product_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with product_lifespan(app_) as state:
            cache = app.state.resources.cache
            log.info(
                EVENT,
                jobs=sorted(chosen),
                metrics=app.state.metrics is not None,
                traced_redis=bool(cache is not None and cache.trace_commands),
            )
            yield state

    app.router.lifespan_context = lifespan
    return app
