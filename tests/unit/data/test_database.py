"""Database on a real SQLite file, migrated as the app migrates it: the item operations,
WAL mode, the failure the 503 handler sees, the operation bound, and the bounded
PostgreSQL pool (built without connecting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from service.config import async_database_url
from service.data import database
from service.data.database import (
    CONNECT_TIMEOUT_SECONDS,
    OPERATION_TIMEOUT_SECONDS,
    Database,
)
from service.data.migrations.runner import upgrade

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = async_database_url(f"sqlite:///{tmp_path}/items.sqlite3")
    await upgrade(url)  # the schema comes from the migrations, as at the app's start
    db = Database(url)
    yield db
    await db.close()


async def test_an_added_item_is_read_back_with_its_fields(db: Database) -> None:
    before = datetime.now(UTC)
    added = await db.add_item("pen", "blue", "alice", category="office")
    assert added.id is not None
    read = await db.get_item(added.id)
    assert read is not None
    assert (read.name, read.description, read.created_by, read.category) == (
        "pen",
        "blue",
        "alice",
        "office",
    )
    assert added.created_at.tzinfo is not None and added.created_at >= before


async def test_optional_fields_default_to_none(db: Database) -> None:
    added = await db.add_item("anonymous", None, None)
    read = await db.get_item(added.id)
    assert read is not None
    assert (read.description, read.created_by, read.category) == (None, None, None)


async def test_a_missing_item_is_none(db: Database) -> None:
    assert await db.get_item(12345) is None


async def test_list_is_ordered_by_id_and_paged(db: Database) -> None:
    ids = [(await db.add_item(f"item-{n}", None, None)).id for n in range(5)]
    assert [item.id for item in await db.list_items(50, 0)] == ids
    assert [item.id for item in await db.list_items(2, 1)] == ids[1:3]
    assert await db.list_items(10, 5) == []


async def test_the_sqlite_file_is_in_wal_mode(db: Database) -> None:
    async with db.engine.connect() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    assert mode == "wal"


async def test_sqlite_is_embedded_and_waits_at_most_the_connect_timeout(db: Database) -> None:
    assert db.embedded
    async with db.engine.connect() as conn:
        busy_ms = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
    assert busy_ms == CONNECT_TIMEOUT_SECONDS * 1000


async def test_ping_answers_on_a_reachable_database(db: Database) -> None:
    assert await db.ping() >= 0


async def test_a_broken_database_raises_what_the_503_handler_catches(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(b"not a database " * 100)
    db = Database(async_database_url(f"sqlite:///{path}"))
    with pytest.raises(SQLAlchemyError):
        await db.ping()
    with pytest.raises(SQLAlchemyError):
        await db.get_item(1)
    await db.close()


async def test_an_operation_past_its_bound_raises_timeout_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TimeoutError is what service/api/errors.py answers with the JSON 503."""
    assert OPERATION_TIMEOUT_SECONDS > 0
    assert await db.list_items(10, 0) == []  # a pooled connection: the bound hits the query
    monkeypatch.setattr(database, "OPERATION_TIMEOUT_SECONDS", 0)  # over at the first wait
    with pytest.raises(TimeoutError):
        await db.get_item(1)
    with pytest.raises(TimeoutError):
        await db.list_items(10, 0)
    with pytest.raises(TimeoutError):
        await db.add_item("late", None, None)
    monkeypatch.undo()
    assert await db.list_items(10, 0) == []  # the timed-out write was not committed


async def test_postgresql_gets_a_bounded_pool_and_bounded_connections() -> None:
    db = Database(async_database_url("postgresql://u:p@127.0.0.1:1/app"))  # never connects
    try:
        assert not db.embedded
        pool = db.engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool.timeout()) == (5, CONNECT_TIMEOUT_SECONDS)
    finally:
        await db.close()
    options = database._engine_options(db.url)
    assert (options["max_overflow"], options["pool_pre_ping"]) == (5, True)
    assert options["connect_args"] == {
        "timeout": CONNECT_TIMEOUT_SECONDS,
        "command_timeout": OPERATION_TIMEOUT_SECONDS,
    }
