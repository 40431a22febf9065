"""The app's shared resources (database, cache, downstream client) and their FastAPI
dependency aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.data.cache import Cache
from service.data.database import Database
from service.data.downstream import DownstreamClient


@dataclass
class Resources:
    settings: Settings
    database: Database
    cache: Cache | None
    downstream: DownstreamClient | None = None


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
