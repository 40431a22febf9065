"""/api/items: CRUD backed by the database, read through the Redis cache."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from service.auth import CurrentUser
from service.resources import ResourcesDep

router = APIRouter(prefix="/api/items", tags=["items"])


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_by: str | None
    created_at: datetime


@router.get("")
async def list_items(
    resources: ResourcesDep,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[ItemOut]:
    items = await resources.database.list_items(limit, offset)
    return [ItemOut.model_validate(item) for item in items]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(item: ItemIn, resources: ResourcesDep, user: CurrentUser) -> ItemOut:
    created = await resources.database.add_item(item.name, item.description, user)
    return ItemOut.model_validate(created)


@router.get("/{item_id}", responses={404: {"description": "no such item"}})
async def get_item(
    item_id: Annotated[int, Path(ge=1, le=2**63 - 1)], resources: ResourcesDep
) -> ItemOut:
    key = f"item:{item_id}"
    if resources.cache is not None and (cached := await resources.cache.get(key)):
        return ItemOut.model_validate_json(cached)
    item = await resources.database.get_item(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    out = ItemOut.model_validate(item)
    if resources.cache is not None:
        await resources.cache.set(key, out.model_dump_json())
    return out
