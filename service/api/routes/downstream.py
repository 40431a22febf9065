"""/api/downstream: call the next service within this trace: its /api/ping, or with
?item_id=N its /api/items/N (which reads Redis and the database, so the trace shows the
downstream's dependency spans too)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from service.api.dependencies import ResourcesDep
from service.api.routes.items import MAX_ITEM_ID

router = APIRouter(prefix="/api", tags=["demo"])


@router.get(
    "/downstream",
    responses={
        404: {"description": "DOWNSTREAM_URL is not set"},
        502: {"description": "the downstream is unreachable"},
        504: {"description": "the downstream did not answer within its timeouts"},
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
