"""/api/items: what the body models accept (text PostgreSQL can store, no unknown fields),
created_at always with its UTC offset, and the read-through cache of GET /api/items/{id}
(called directly, with a database and a cache that record their calls)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from service.api.dependencies import Resources
from service.api.routes.items import ItemIn, ItemOut, get_item

STORED = SimpleNamespace(
    id=7,
    name="pen",
    description=None,
    category=None,
    created_by="alice",
    created_at=datetime(2026, 1, 2, 3, 4, 5),  # as SQLite returns it: no offset
)


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "a\x00b"},
        {"name": "ok", "description": "nul\x00"},
        {"name": "ok", "category": "c" * 101},
        {"name": "ok", "owner": "mallory"},  # unknown fields are refused
        {"name": "\ud800"},  # a lone surrogate (a valid JSON escape)
    ],
)
def test_item_in_refuses(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ItemIn.model_validate(body)


def test_item_in_accepts_text_at_its_limits() -> None:
    item = ItemIn.model_validate({"name": "é" * 200, "description": "d" * 2000, "category": ""})
    assert (len(item.name), item.category) == (200, "")


def test_item_out_gives_a_naive_time_its_utc_offset() -> None:
    out = ItemOut.model_validate(STORED)
    assert out.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert out.model_dump_json().count("Z") + out.model_dump_json().count("+00:00") == 1


def test_item_out_reads_cached_json_without_a_category() -> None:
    cached = (
        '{"id": 7, "name": "pen", "description": null, "created_by": null,'
        ' "created_at": "2026-01-02T03:04:05Z"}'
    )
    assert ItemOut.model_validate_json(cached).category is None


class Database:
    def __init__(self, item: Any) -> None:
        self.item = item
        self.reads: list[int] = []

    async def get_item(self, item_id: int) -> Any:
        self.reads.append(item_id)
        return self.item


class Cache:
    def __init__(self, cached: dict[str, str] | None = None) -> None:
        self.values = dict(cached or {})

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


def resources(database: Database, cache: Cache | None) -> Resources:
    return cast(Resources, SimpleNamespace(database=database, cache=cache))


def test_a_cache_miss_reads_the_database_and_fills_the_cache() -> None:
    database, cache = Database(STORED), Cache()
    out = asyncio.run(get_item(7, resources(database, cache)))
    assert (out.id, database.reads) == (7, [7])
    assert ItemOut.model_validate_json(cache.values["item:7"]) == out


def test_a_cache_hit_does_not_read_the_database() -> None:
    cached = ItemOut.model_validate(STORED).model_dump_json()
    database = Database(None)
    out = asyncio.run(get_item(7, resources(database, Cache({"item:7": cached}))))
    assert (out.name, database.reads) == ("pen", [])


def test_a_missing_item_is_a_404_and_is_not_cached() -> None:
    cache = Cache()
    with pytest.raises(HTTPException) as missing:
        asyncio.run(get_item(8, resources(Database(None), cache)))
    assert (missing.value.status_code, missing.value.detail) == (404, "item 8 not found")
    assert cache.values == {}


def test_without_redis_the_database_answers() -> None:
    database = Database(STORED)
    assert asyncio.run(get_item(7, resources(database, None))).id == 7
    assert database.reads == [7]
