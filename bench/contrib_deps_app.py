# Usage: OTEL_INSTRUMENT_DEPENDENCIES=false \
#   gunicorn -c python:service.gunicorn_conf bench.contrib_deps_app:app
"""The "full-contrib-deps" benchmark variant: full observability with the contrib
opentelemetry-instrumentation-sqlalchemy and -redis making the dependency spans in place
of ours (service/telemetry/dependency_spans.py; run with OTEL_INSTRUMENT_DEPENDENCIES=false
so ours stay off), to decide between them on the items route (issue 19).

Only the benchmark imports this module: the product never depends on the contrib
packages (bench/requirements.txt). The Redis instrumentation patches redis.asyncio's
client classes, so the cache's client (made in the lifespan) is traced; the SQLAlchemy one
is given the engine once the lifespan has made it. Both use the global TracerProvider the
worker sets up (service/gunicorn_conf.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

from service.config import get_settings
from service.main import create_app


def contrib_deps_app() -> FastAPI:
    settings = get_settings()
    if settings.otel_instrument_dependencies:
        raise RuntimeError("run with OTEL_INSTRUMENT_DEPENDENCIES=false: one span per command")
    app = create_app(settings)
    RedisInstrumentor().instrument()
    product_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with product_lifespan(app_) as state:
            engine = app.state.resources.database.engine
            SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)
            yield state

    app.router.lifespan_context = lifespan
    return app


app = contrib_deps_app()
