# Usage: gunicorn -c python:service.gunicorn_conf service.main:app   (or: make run)
"""The ASGI application: routers, middleware, and the lifespan that opens and
closes the database and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service import context
from service.cache import Cache
from service.config import Settings, get_settings
from service.db import Database
from service.health import router as health_router
from service.logs import get_logger
from service.middleware.access_log import AccessLogMiddleware
from service.middleware.body_limit import BodyLimitMiddleware
from service.middleware.shutdown import ShutdownMiddleware
from service.middleware.tracing import TracingMiddleware
from service.resources import Resources
from service.routes.admin import admin_hidden
from service.routes.admin import router as admin_router
from service.routes.demo import router as demo_router
from service.routes.items import router as items_router
from service.shutdown import GracefulShutdownManager
from service.tracing import flush_tracing, setup_tracing

log = get_logger("service.lifespan")
# One tracing path only: our TracingMiddleware. FastAPI's native telemetry would add
# a second set of spans as soon as a global TracerProvider exists.
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
# Methods a 405's Allow header may list.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.observability == "full":
        setup_tracing(settings.service_name)
    database = Database(settings.database_url)
    cache = Cache(settings.redis_url) if settings.redis_url else None
    try:
        await database.ensure_schema()
    except Exception as exc:  # the readiness probe reports it and retries
        log.warning("database_unavailable_at_startup", error=f"{type(exc).__name__}: {exc}")
    app.state.resources = Resources(settings, database, cache)
    log.info("startup_complete", database=database.engine.dialect.name, redis=cache is not None)
    yield
    await close_resources(database, cache)
    app.state.shutdown.finish()


async def close_resources(database: Database, cache: Cache | None) -> None:
    """Close the database pool, then Redis; each bounded, each logged."""
    try:
        await database.close()
        log.info("database_closed")
    except Exception as exc:
        log.error("database_close_failed", error=f"{type(exc).__name__}: {exc}")
    if cache is not None:
        try:
            await cache.close()
            log.info("redis_closed")
        except Exception as exc:
            log.error("redis_close_failed", error=f"{type(exc).__name__}: {exc}")
    flush_tracing()


async def dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A database that is down or slow gives a fast JSON 503, not a 500 with a traceback."""
    log.warning(
        "database_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}"[:500]
    )
    return JSONResponse(
        {"detail": "database unavailable, retry later", "request_id": context.request_id.get()},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own handler, with two fixes to 405 answers:
    - without ADMIN_TOKEN the admin routes answer 404 to every method (a 405 with
      `Allow: POST` would reveal that they exist);
    - a 405 lists every method the path takes: Starlette names only the first route
      that matched the path (`Allow: GET` for /api/items, which also takes POST), and
      RFC 9110 wants them all."""
    if exc.status_code == 405 and admin_hidden(request):
        exc = StarletteHTTPException(404, "Not Found")
    if exc.status_code == 405:
        allowed = [
            method
            for method in HTTP_METHODS
            if any(
                route.matches({**request.scope, "method": method})[0] is Match.FULL
                for route in request.app.router.routes
            )
        ]
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, exc)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, except that an error echoing input with a lone surrogate (a valid
    JSON escape such as \\ud800, but not UTF-8) is sent escaped: FastAPI's own
    rendering raised UnicodeEncodeError and the client got a 500."""
    try:
        return await request_validation_exception_handler(request, exc)
    except UnicodeEncodeError:
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")


async def internal_error(request: Request, exc: Exception) -> Response:
    """The body of a 500 that reached Starlette's outermost layer, which happens only
    without AccessLogMiddleware (OBSERVABILITY=off): JSON, as every other error, instead
    of Starlette's plain text. Starlette re-raises the exception afterwards, so the
    server still logs it with its traceback."""
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="fastapi-app",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,  # type: ignore[arg-type]
    )
    app.state.settings = settings
    app.state.shutdown = GracefulShutdownManager(
        settings.grace_period_seconds, settings.shutdown_delay_seconds
    )
    app.include_router(health_router)
    app.include_router(items_router)
    app.include_router(demo_router)
    app.include_router(admin_router, include_in_schema=False)  # not part of the public API
    for error in (SQLAlchemyError, OSError, TimeoutError):
        app.add_exception_handler(error, dependency_unavailable)
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)
    # add_middleware wraps: the last added is the outermost, so the order is
    # Tracing -> AccessLog -> Shutdown -> BodyLimit -> routes (rejected requests are
    # logged and traced).
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_request_body_bytes)
    app.add_middleware(
        ShutdownMiddleware,
        manager=app.state.shutdown,
        retry_after_seconds=settings.effective_retry_after_seconds,
        message=settings.shutdown_message,
    )
    if settings.observability == "full":
        app.add_middleware(AccessLogMiddleware, slow_request_ms=settings.slow_request_ms)
        app.add_middleware(TracingMiddleware)
    return app


app = create_app()
