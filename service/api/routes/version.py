"""GET /version: which build answers (APP_VERSION and APP_REVISION, set by the image)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from service.api.responses import DRAINING

router = APIRouter(tags=["version"], responses=DRAINING)


class Version(BaseModel):
    version: str
    revision: str


@router.get("/version")
async def version(request: Request) -> Version:
    settings = request.app.state.settings
    return Version(version=settings.app_version, revision=settings.app_revision)
