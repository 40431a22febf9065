"""Exception handlers: every error the app raises answers in the one error shape,
{"detail": ..., "request_id": <the response's X-Request-ID>} (service/request/errors.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from service.api.routes.admin import admin_hidden
from service.data.downstream import DownstreamError
from service.request.errors import error_body
from service.telemetry.logs import get_logger

log = get_logger("service.errors")
# Methods a 405's Allow header may list.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Errors of a dependency that is down or slow (the database; Redis failures never reach
# a route: the cache falls back to the database).
DEPENDENCY_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
BYTES_AS_TEXT: dict[Any, Callable[[Any], Any]] = {
    bytes: lambda value: value.decode("utf-8", "replace")
}


def json_error(
    status_code: int, detail: Any, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An error answer. ensure_ascii: detail may echo input with a lone surrogate (a
    valid JSON escape such as \\ud800, but not UTF-8), which must not turn into a 500;
    nor may a 422's `input` that is the raw body (bytes, not always UTF-8)."""
    encoded = jsonable_encoder(error_body(detail, **extra), custom_encoder=BYTES_AS_TEXT)
    body = json.dumps(encoded, ensure_ascii=True)
    return Response(body, status_code, headers, media_type="application/json")


async def dependency_unavailable(request: Request, exc: Exception) -> Response:
    """A database that is down or slow gives a fast JSON 503, not a 500 with a traceback."""
    log.warning(
        "database_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}"[:500]
    )
    return json_error(503, "database unavailable, retry later", {"Retry-After": "1"})


async def downstream_error(request: Request, exc: DownstreamError) -> Response:
    """A downstream that is down (502) or slow (504): the reason (which URL, which error)
    in the log line; the client gets a fixed text, nothing about the downstream."""
    log.warning(
        "downstream_unavailable",
        path=request.url.path,
        status_code=exc.status_code,
        error=str(exc)[:500],
    )
    return json_error(exc.status_code, exc.detail)


async def http_error(request: Request, exc: HTTPException) -> Response:
    """HTTPException (401, 404, 405, 408, 413, ...) in the error shape, with two fixes to
    405 answers:
    - without ADMIN_TOKEN the admin routes answer 404 to every method (a 405 with
      `Allow: POST` would reveal that they exist);
    - a 405 lists every method the path takes: Starlette names only the first route
      that matched the path (`Allow: GET` for /api/items, which also takes POST), and
      RFC 9110 wants them all."""
    if admin_hidden(request):
        # Absent from the metrics and spans too: recorded as unmatched (http_route "").
        request.scope.pop("route", None)
        if exc.status_code == 405:
            exc = HTTPException(404, "Not Found")
    headers = dict(exc.headers or {})
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
            headers["Allow"] = ", ".join(allowed)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=headers)
    return json_error(exc.status_code, exc.detail, headers)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 (its list of errors in detail), in the error shape."""
    return json_error(422, exc.errors())


async def internal_error(request: Request, exc: Exception) -> Response:
    """The body of a 500 that reached Starlette's outermost layer, which happens only
    without ObservabilityMiddleware (OBSERVABILITY=off; with it, that middleware answers):
    JSON, as every other error. Starlette re-raises the exception afterwards, so the
    server still logs it with its traceback."""
    return json_error(500, "Internal Server Error")


def add_error_handlers(app: FastAPI) -> None:
    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, dependency_unavailable)
    app.add_exception_handler(DownstreamError, downstream_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)
