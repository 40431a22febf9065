# Usage: gunicorn -c python:service.gunicorn_conf service.main:app   (or: make run)
"""The ASGI application: routers, middleware, and the lifespan that opens and
closes the database and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from service.api.auth import require_user_to_write
from service.api.dependencies import Resources
from service.api.errors import add_error_handlers
from service.api.health import router as health_router
from service.api.routes.admin import router as admin_router
from service.api.routes.demo import ping_router
from service.api.routes.demo import router as demo_router
from service.api.routes.downstream import router as downstream_router
from service.api.routes.items import router as items_router
from service.api.routes.version import router as version_router
from service.config import PACKAGE_VERSION, Settings, get_settings
from service.data.cache import Cache
from service.data.database import Database
from service.data.downstream import DownstreamClient
from service.server.body_limit import BodyLimitMiddleware
from service.server.faults import FaultMiddleware
from service.server.shutdown import GracefulShutdownManager
from service.server.shutdown_middleware import ShutdownMiddleware
from service.telemetry.dependency_spans import instrument_engine
from service.telemetry.logs import get_logger
from service.telemetry.metrics import AppMetrics, BuildInfo
from service.telemetry.observability import JOBS, ObservabilityMiddleware
from service.telemetry.tracing import flush_tracing, setup_tracing

log = get_logger("service.lifespan")
# One tracing path only: our ObservabilityMiddleware. FastAPI's native telemetry would add
# a second set of spans as soon as a global TracerProvider exists.
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.observability == "full":
        setup_tracing(settings.service_name, settings.lean_otlp_exporter, settings.app_version)
    database = Database(settings.database_url)
    trace_dependencies = settings.observability == "full" and settings.otel_instrument_dependencies
    if trace_dependencies:
        instrument_engine(database.engine.sync_engine)
    cache = (
        Cache(settings.redis_url, app.state.metrics, trace_commands=trace_dependencies)
        if settings.redis_url
        else None
    )
    downstream = (
        DownstreamClient(
            settings.downstream_url,
            settings.downstream_timeout_seconds,
            settings.downstream_max_body_bytes,
            settings.baggage_allowed_keys,
        )
        if settings.downstream_url
        else None
    )
    # The app runs no DDL on PostgreSQL: the migration step does (python -m
    # service.data.migrate); readiness waits for it. The embedded SQLite migrates itself,
    # and MIGRATE_ON_START=true does the same for PostgreSQL (each worker; serialized).
    if database.embedded or settings.migrate_on_start:
        from service.data.migrate import migrate_at_start  # Alembic only where it is used

        await migrate_at_start(settings.database_url)
    app.state.resources = Resources(settings, database, cache, downstream)
    log.info(
        "startup_complete",
        database=database.engine.dialect.name,
        redis=cache is not None,
        version=settings.app_version,
        revision=settings.app_revision,
    )
    yield
    await close_resources(database, cache, downstream, settings.shutdown_cleanup_seconds)
    app.state.shutdown.finish()


def budget_spent(cleanup_seconds: float) -> str:
    return f"cut: SHUTDOWN_CLEANUP_SECONDS ({cleanup_seconds:g} s) spent"


async def close_bounded(
    name: str, close: Callable[[], Awaitable[None]], deadline: float, cleanup_seconds: float
) -> None:
    """One resource's close, bounded by its own timeout and by the cleanup's deadline;
    logged as <name>_closed or <name>_close_failed; a failure never keeps the next one
    open."""
    budget = asyncio.timeout_at(deadline)
    try:
        async with budget:
            await close()
        log.info(f"{name}_closed")
    except Exception as exc:
        cut = budget.expired()
        error = budget_spent(cleanup_seconds) if cut else f"{type(exc).__name__}: {exc}"
        log.error(f"{name}_close_failed", error=error)


async def close_resources(
    database: Database,
    cache: Cache | None,
    downstream: DownstreamClient | None = None,
    cleanup_seconds: float = 5.0,
) -> None:
    """Close the database pool, then Redis, then the downstream client, then flush spans;
    each bounded by its own timeout, all by one deadline cleanup_seconds from now
    (SHUTDOWN_CLEANUP_SECONDS); each logged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cleanup_seconds
    await close_bounded("database", database.close, deadline, cleanup_seconds)
    if cache is not None:
        await close_bounded("redis", cache.close, deadline, cleanup_seconds)
    if downstream is not None:
        await close_bounded("downstream_client", downstream.close, deadline, cleanup_seconds)
    if await flush_tracing(deadline - loop.time()) is False:
        log.error("spans_flush_failed", error=budget_spent(cleanup_seconds))


def create_app(
    settings: Settings | None = None, observability_jobs: frozenset[str] = JOBS
) -> FastAPI:
    """The app. observability_jobs: which of ObservabilityMiddleware's jobs run with
    OBSERVABILITY=full (all of them; `make bench` measures each alone)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="fastapi-app",
        version=PACKAGE_VERSION,
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,  # type: ignore[arg-type]
        # With API tokens configured, writes under /api need one (service/api/auth.py).
        dependencies=[Depends(require_user_to_write)],
    )
    app.state.settings = settings
    app.state.shutdown = GracefulShutdownManager(
        settings.grace_period_seconds, settings.shutdown_delay_seconds
    )
    # Per-worker instruments, served by the Gunicorn master (service/server/metrics_listener.py).
    app.state.metrics = (
        AppMetrics(BuildInfo(settings.service_name, settings.app_version, settings.app_revision))
        if settings.metrics_on
        else None
    )
    app.include_router(health_router)
    app.include_router(items_router)
    app.include_router(ping_router)
    if settings.demo_routes:
        app.include_router(demo_router)
    app.include_router(downstream_router)
    app.include_router(version_router)
    app.include_router(admin_router, include_in_schema=False)  # not part of the public API
    add_error_handlers(app)
    # add_middleware wraps: the last added is the outermost, so the order is
    # Observability (span, then request id, metrics, access line) -> Shutdown ->
    # BodyLimit -> [Fault, only with FAULT_* set] -> routes (rejected requests are logged and
    # traced).
    if settings.faults_on:
        app.add_middleware(
            FaultMiddleware,
            error_ratio=settings.fault_error_ratio,
            delay_ms=settings.fault_delay_ms,
            # The /api routes, for the template a faulted request is counted under.
            routes=[
                route
                for router in (items_router, ping_router, demo_router, downstream_router)
                for route in router.routes
            ],
        )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_request_body_bytes)
    app.add_middleware(
        ShutdownMiddleware,
        manager=app.state.shutdown,
        retry_after_seconds=settings.effective_retry_after_seconds,
        message=settings.shutdown_message,
        metrics=app.state.metrics,
    )
    if settings.observability == "full":
        # One layer for the span and the access line (it was two: one wrapper of `send`
        # less, measured by make bench's full-split variant).
        app.add_middleware(
            ObservabilityMiddleware,
            slow_request_ms=settings.slow_request_ms,
            metrics=app.state.metrics,
            app_version=settings.app_version,
            jobs=observability_jobs,
        )
    return app


app = create_app()
