"""The revisions: REVISIONS matches the files, the model matches the migrated schema (on
SQLite and PostgreSQL), and runs on the embedded SQLite (PostgreSQL runs:
tests/integration/test_migrations.py)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import async_database_url
from service.data.database import Base
from service.data.migrations import HEAD, REVISIONS, is_behind, is_newer
from service.data.migrations.runner import LOCK_KEY, offline_sql, script_directory, upgrade
from tools.testbed.servers import PostgresServer


def test_revisions_list_the_files_in_order() -> None:
    script = script_directory()
    assert [s.revision for s in reversed(list(script.walk_revisions()))] == list(REVISIONS)
    assert script.get_heads() == [HEAD]  # one line of history, no branches


def test_behind_and_newer() -> None:
    assert is_behind(()) and not is_newer(())
    assert not is_behind((HEAD,)) and not is_newer((HEAD,))
    assert is_newer(("9999",)) and not is_behind(("9999",))  # a later release migrated it
    if len(REVISIONS) > 1:
        assert is_behind((REVISIONS[-2],))


def test_upgrade_applies_each_revision_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    first = asyncio.run(upgrade(url))
    assert [a.revision for a in first.applied] == list(REVISIONS)
    assert first.before == () and first.after == (HEAD,)
    again = asyncio.run(upgrade(url))
    assert again.applied == [] and again.before == again.after == (HEAD,)


def fresh_postgres_database(postgres: PostgresServer) -> str:
    name = f"model_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        engine = create_async_engine(async_database_url(postgres.url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f"CREATE DATABASE {name}"))
        finally:
            await engine.dispose()

    asyncio.run(create())
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def test_the_model_matches_the_migrated_schema(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """What the app's model expects is what the migrations made, on either database: no
    table, column, type, nullability or index apart."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/m.db"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres"))
    asyncio.run(upgrade(url))

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async def migrated_diff() -> list[object]:
        engine = create_async_engine(async_database_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(diff)
        finally:
            await engine.dispose()

    assert asyncio.run(migrated_diff()) == []


def test_offline_sql_takes_the_lock_and_sets_timeouts_first() -> None:
    text = offline_sql()
    lock = text.index(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
    assert text.index("BEGIN;") < lock < text.index("SET LOCAL lock_timeout = '5s'")
    assert text.index("SET LOCAL statement_timeout = '60s'") < text.index("CREATE TABLE items")
    assert text.rstrip().endswith("COMMIT;")


@pytest.mark.parametrize("start", [None, *REVISIONS[:-1]])
def test_offline_sql_of_one_revision(start: str | None) -> None:
    following = REVISIONS[REVISIONS.index(start) + 1] if start else REVISIONS[0]
    text = offline_sql(start, following)
    assert f"-- Running upgrade {start or ''} -> {following}" in text
