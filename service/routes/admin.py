"""/admin/shutdown: start the graceful shutdown of the whole server (all workers)."""

from __future__ import annotations

import hmac
import os
import signal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from service.auth import bearer_token
from service.logs import get_logger
from service.resources import ResourcesDep
from service.shutdown import GracefulShutdownManager

log = get_logger("service.admin")
router = APIRouter(prefix="/admin", tags=["admin"])


def admin_hidden(request: Request) -> bool:
    """True for an admin path while ADMIN_TOKEN is unset: it must look absent (404)."""
    settings = request.app.state.settings
    return request.url.path.startswith(f"{router.prefix}/") and settings.admin_token is None


@router.post(
    "/shutdown",
    status_code=status.HTTP_202_ACCEPTED,
    responses={401: {"description": "wrong token"}, 404: {"description": "disabled"}},
)
async def shutdown(request: Request, resources: ResourcesDep) -> JSONResponse:
    expected = resources.settings.admin_token
    if expected is None:  # admin routes do not exist without ADMIN_TOKEN
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    token = bearer_token(request) or ""
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        client = request.client.host if request.client else None
        log.warning(
            "admin_request_refused",
            path=request.url.path,
            client_ip=client,
            token_present=bool(token),
        )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid admin token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    manager: GracefulShutdownManager = request.app.state.shutdown
    log.info("admin_shutdown_requested", master_pid=manager.master_pid)
    if manager.master_pid:
        os.kill(manager.master_pid, signal.SIGTERM)  # the master drains every worker
    else:
        manager.begin("admin")
    return JSONResponse({"status": "shutting_down"}, status_code=status.HTTP_202_ACCEPTED)
