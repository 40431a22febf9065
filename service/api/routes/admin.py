"""/admin/shutdown: start the graceful shutdown of the whole server (all workers)."""

from __future__ import annotations

import hmac
import os
import signal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from service.api.auth import bearer_token
from service.api.dependencies import ResourcesDep
from service.server.shutdown import GracefulShutdownManager
from service.telemetry.logs import get_logger

log = get_logger("service.admin")
router = APIRouter(prefix="/admin", tags=["admin"])


def on_admin_listener(request: Request) -> bool:
    """The request came in on the loopback admin listener (ADMIN_PORT), not the API port
    that Services, Ingresses and NetworkPolicy peers reach."""
    server = request.scope.get("server")
    return server is not None and server[1] == request.app.state.settings.admin_port


def admin_hidden(request: Request) -> bool:
    """True for an admin path that must look absent (404): ADMIN_TOKEN is unset, or the
    request did not come in on the admin listener."""
    settings = request.app.state.settings
    if not request.url.path.startswith(f"{router.prefix}/"):
        return False
    return settings.admin_token is None or not on_admin_listener(request)


@router.post(
    "/shutdown",
    status_code=status.HTTP_202_ACCEPTED,
    responses={401: {"description": "wrong token"}, 404: {"description": "disabled"}},
)
async def shutdown(request: Request, resources: ResourcesDep) -> JSONResponse:
    expected = resources.settings.admin_token
    if expected is None or admin_hidden(request):  # absent without the token, or off-port
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
