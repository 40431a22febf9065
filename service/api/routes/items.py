"""/api/items: CRUD backed by the database, read through the Redis cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.api.auth import CurrentUser
from service.api.dependencies import ResourcesDep
from service.api.responses import BEARER, DATABASE, INVALID, WRITE, error_response

router = APIRouter(prefix="/api/items", tags=["items"], responses=DATABASE)


# Text PostgreSQL can store: no NUL character, and valid Unicode (JSON escapes can carry
# lone surrogates; matching a pattern makes pydantic refuse those too). Without it such
# input got a 503 (NUL) or a 500 (surrogate) instead of a 422.
NO_NUL = r"^[^\x00]*$"
# The items table's id column is a 32-bit integer: larger ids cannot exist.
MAX_ITEM_ID = 2**31 - 1


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    description: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)
    # Schema revision 0002. The previous release refuses it (extra="forbid"): clients send
    # it once every pod runs this code.
    category: str | None = Field(default=None, max_length=100, pattern=NO_NUL)


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    # A default: item JSON cached in Redis by the previous release has no category.
    category: str | None = None
    created_by: str | None
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """Stored in UTC; SQLite returns it without an offset, which would not be the
        RFC 3339 date-time the schema promises."""
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.get("", responses=INVALID)
async def list_items(
    resources: ResourcesDep,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[ItemOut]:
    items = await resources.database.list_items(limit, offset)
    return [ItemOut.model_validate(item) for item in items]


@router.post("", status_code=status.HTTP_201_CREATED, responses=WRITE, dependencies=[BEARER])
async def create_item(item: ItemIn, resources: ResourcesDep, user: CurrentUser) -> ItemOut:
    created = await resources.database.add_item(item.name, item.description, user, item.category)
    return ItemOut.model_validate(created)


@router.get("/{item_id}", responses={404: error_response("no such item"), **INVALID})
async def get_item(
    item_id: Annotated[int, Path(ge=1, le=MAX_ITEM_ID)], resources: ResourcesDep
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
