"""Database: SQLAlchemy 2 async engine (asyncpg for PostgreSQL, aiosqlite embedded)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, Text, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.data.schema import SchemaCheck
from service.telemetry.logs import get_logger

log = get_logger(__name__)
CLOSE_TIMEOUT_SECONDS = 2.0
# A request that needs the database fails fast when it is down instead of hanging.
CONNECT_TIMEOUT_SECONDS = 2.0
# Upper bound on one data operation (waiting for a pooled connection, its pre-ping, the
# statements). Measured with a frozen (SIGSTOPped) PostgreSQL: without it a read whose
# pooled connection's pre-ping hung waited asyncpg's command timeout and then a new
# connection, 12 s in all. TimeoutError becomes the JSON 503 (service/api/errors.py).
OPERATION_TIMEOUT_SECONDS = 5.0


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    category: Mapped[str | None] = mapped_column(Text, default=None)  # revision 0002
    created_by: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url, **_engine_options(url))
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_wal)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The schema comes from the migrations (service/data/migrations), never from here:
        # the app runs no DDL on PostgreSQL. Readiness checks the revision.
        self.schema = SchemaCheck(self.engine)

    @property
    def embedded(self) -> bool:
        """SQLite: the app migrates it itself at start (no migration step to run)."""
        return self.engine.dialect.name == "sqlite"

    async def ping(self) -> float:
        """Round trip `SELECT 1`; returns latency in ms."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        await asyncio.wait_for(self.engine.dispose(), CLOSE_TIMEOUT_SECONDS)

    async def get_item(self, item_id: int) -> Item | None:
        async with asyncio.timeout(OPERATION_TIMEOUT_SECONDS), self.sessions() as session:
            return await session.get(Item, item_id)

    async def list_items(self, limit: int, offset: int) -> list[Item]:
        async with asyncio.timeout(OPERATION_TIMEOUT_SECONDS), self.sessions() as session:
            rows = await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
            return list(rows)

    async def add_item(
        self,
        name: str,
        description: str | None,
        created_by: str | None,
        category: str | None = None,
    ) -> Item:
        async with (
            asyncio.timeout(OPERATION_TIMEOUT_SECONDS),
            self.sessions() as session,
            session.begin(),
        ):
            item = Item(
                name=name, description=description, created_by=created_by, category=category
            )
            session.add(item)
        return item


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers and the writer stop blocking each other across worker processes
    (with the default journal, a shared file under load answered 2.4% 503s)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": CONNECT_TIMEOUT_SECONDS}}
    return {
        "pool_size": 5,
        "max_overflow": 5,
        "pool_timeout": CONNECT_TIMEOUT_SECONDS,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        # No statement outlives the operation that runs it.
        "connect_args": {
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": OPERATION_TIMEOUT_SECONDS,
        },
    }
