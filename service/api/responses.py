"""The answers the OpenAPI document promises besides each route's own: the one error shape
(service/request/errors.py) as pydantic models, and the `responses=` entries built from
them, so /openapi.json describes every status a route can give and the body it comes with.

Not per operation: what the HTTP parser refuses before any route is chosen (400 for
broken HTTP, 408 for a head not complete in time, 414, 431: service/server/http_limits.py)
and 405 for a method a path does not take. Those answer in the same error shape."""

from __future__ import annotations

from typing import Any

from fastapi import Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from service.server.http_limits import BODY_READ_TIMEOUT_SECONDS

Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and the response's X-Request-ID."""

    detail: str
    request_id: str | None = Field(
        description="The X-Request-ID of this response (null with OBSERVABILITY=off)."
    )


class ValidationIssue(BaseModel):
    """One of FastAPI's validation errors (it may carry `input` and `ctx` too)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: FastAPI's list of validation errors as `detail`, in the error shape."""

    detail: list[ValidationIssue]
    request_id: str | None


class DrainBody(ErrorBody):
    """503 while the server drains (SHUTDOWN_MESSAGE), also sent as Retry-After."""

    retry_after: int = Field(description="Seconds to wait before retrying elsewhere.")


def error_response(description: str, model: Any = ErrorBody) -> dict[str, Any]:
    return {"model": model, "description": description}


# Any route outside /health/ once the drain rejects (service/server/shutdown_middleware.py).
DRAINING: Responses = {
    503: error_response("the server is draining: retry (Retry-After)", DrainBody)
}
# Routes that use the database: its 503 (with Retry-After: 1), or the drain's.
DATABASE: Responses = {
    503: error_response(
        "the database is unavailable, or the server is draining (retry_after): retry later",
        DrainBody | ErrorBody,
    )
}
# Routes with parameters or a body (FastAPI's own 422 schema lacks request_id).
INVALID: Responses = {
    422: error_response("the parameters or the body are not valid", ValidationErrorBody)
}
# Writes under /api (service/api/auth.py, service/server/body_limit.py).
WRITE: Responses = {
    400: error_response("the body could not be read (e.g. not UTF-8)"),
    401: error_response(
        "API tokens are configured and the bearer token is missing or unknown"
        " (WWW-Authenticate: Bearer)"
    ),
    408: error_response(f"the body stalled: no data for {BODY_READ_TIMEOUT_SECONDS} s"),
    413: error_response("the body is larger than MAX_REQUEST_BODY_BYTES"),
    **INVALID,
}
# Documents the bearer token of a write (the `security` of its operation). The check is
# service/api/auth.py's require_user_to_write; this dependency only reads the header.
BEARER = Security(
    HTTPBearer(
        auto_error=False,
        description="Required for writes under /api once API_TOKENS is configured.",
    )
)
