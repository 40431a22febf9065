"""The `schema` readiness check on the embedded SQLite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.data import schema
from service.data.migrations import HEAD
from service.data.migrations.runner import upgrade
from service.data.schema import SchemaBehind, SchemaCheck


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/s.db"


async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def test_behind_until_migrated_then_ready_without_a_new_check_object(url: str) -> None:
    async def scenario() -> None:
        async for engine in engine_for(url):
            check = SchemaCheck(engine)
            with pytest.raises(SchemaBehind) as behind:
                await check.check()
            assert behind.value.fields == {
                "schema": "main",
                "revision": "none",
                "required_revision": HEAD,
            }
            assert f'schema "main" is at revision none, this code needs {HEAD}' in str(behind.value)
            await upgrade(url)
            result = await check.check()
            assert result["revision"] == HEAD and "cached" not in result
            assert (await check.check())["cached"] is True  # at the head: not read again

    asyncio.run(scenario())


def test_a_newer_revision_is_ready_with_one_warning(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        await upgrade(url)
        async for engine in engine_for(url):
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            check = SchemaCheck(engine, recheck_seconds=0)
            with caplog.at_level(logging.WARNING):
                first = await check.check()
                await check.check()
            assert first["revision"] == "9999" and "newer" in first["detail"]

    asyncio.run(scenario())
    warnings = [r for r in caplog.records if getattr(r, "event", "") == "schema_newer_than_code"]
    assert len(warnings) == 1


def fail_to_read(_connection: object) -> None:
    raise ConnectionRefusedError("the database is down")


def test_a_failed_reread_keeps_the_last_answer(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        await upgrade(url)
        async for engine in engine_for(url):
            check = SchemaCheck(engine, recheck_seconds=0)
            assert (await check.check())["revision"] == HEAD
            monkeypatch.setattr(schema, "read_revisions", fail_to_read)
            assert (await check.check())["cached"] is True  # the database check reports it

    asyncio.run(scenario())


def test_never_read_and_unreachable_fails(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "read_revisions", fail_to_read)

    async def scenario() -> None:
        async for engine in engine_for(url):
            with pytest.raises(ConnectionRefusedError):
                await SchemaCheck(engine).check()

    asyncio.run(scenario())
