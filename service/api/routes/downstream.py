"""/api/downstream: call the next service within this trace: its /api/ping, or with
?item_id=N its /api/items/N (which reads Redis and the database, so the trace shows the
downstream's dependency spans too)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from service.api.dependencies import ResourcesDep
from service.api.responses import DRAINING, INVALID, error_response
from service.api.routes.items import MAX_ITEM_ID

router = APIRouter(prefix="/api", tags=["demo"], responses=DRAINING)


@router.get(
    "/downstream",
    responses={
        404: error_response("DOWNSTREAM_URL is not set"),
        502: error_response("the downstream is down, its answer broke HTTP or was too large"),
        504: error_response("the downstream did not answer in time, or every connection was busy"),
        **INVALID,
    },
)
async def downstream(
    resources: ResourcesDep,
    item_id: Annotated[int | None, Query(ge=1, le=MAX_ITEM_ID)] = None,
) -> dict[str, Any]:
    """The downstream's answer and its status code. The call carries this request's trace
    context and X-Request-ID."""
    if resources.downstream is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found: DOWNSTREAM_URL is not set")
    path = "/api/ping" if item_id is None else f"/api/items/{item_id}"
    response = await resources.downstream.get(path)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:1000]
    return {"downstream": body, "downstream_status": response.status_code}
