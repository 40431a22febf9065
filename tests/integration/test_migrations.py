"""Migrations on a real PostgreSQL: the command, its lock, its transaction, and readiness
following the schema. Each test gets a database of its own in the session's server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import async_database_url
from service.data.migrations import HEAD, REVISIONS
from tools.testbed.jsonlines import parse_json_lines
from tools.testbed.servers import PostgresServer, ServiceProcess
from tools.testbed.support import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.integration

FAILING_REVISION = '''"""Adds a column, then fails: the run must leave no trace."""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:
    op.add_column("items", sa.Column("doomed", sa.Text(), nullable=True))
    op.execute("SELECT 1 / 0")
'''
# The table as create_all made it before migrations existed (the DDL it emitted).
PRE_MIGRATIONS_TABLE = """CREATE TABLE items (
    id SERIAL NOT NULL, name VARCHAR(200) NOT NULL, description TEXT,
    created_by VARCHAR(200), created_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (id))"""


def sql(url: str, query: str) -> list[Any]:
    """Run one statement outside a transaction (CREATE DATABASE needs that); its rows."""

    async def run() -> list[Any]:
        engine = create_async_engine(async_database_url(url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(query))
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    """A fresh, empty database's URL."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    sql(postgres.url, f"CREATE DATABASE {name}")
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def migrate(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.data.migrate", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 60) -> tuple[int, list[dict[str, Any]]]:
    out, err = proc.communicate(timeout=timeout_s)
    assert not err.strip(), err
    return proc.returncode, parse_json_lines(out)


def revision(url: str) -> list[str]:
    return sorted(r[0] for r in sql(url, "SELECT version_num FROM alembic_version"))


def columns(url: str) -> list[str]:
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'"
    return sorted(r[0] for r in sql(url, query))


def test_runs_at_once_are_serialized_and_a_second_run_is_a_noop(database: str) -> None:
    runs = [migrate(database) for _ in range(4)]
    outcomes = [finish(proc) for proc in runs]
    assert [code for code, _ in outcomes] == [0] * 4, outcomes
    applied = [line["revision"] for _, lines in outcomes for line in lines
               if line["message"] == "migration_applied"]  # fmt: skip
    assert sorted(applied) == sorted(REVISIONS)  # each once: the others waited, then no-op
    assert revision(database) == [HEAD]
    code, lines = finish(migrate(database))
    assert code == 0
    [done] = lines
    assert done["message"] == "migrations_complete" and done["applied"] == []
    assert done["revision"] == done["revision_before"] == HEAD
    assert done["host"] == database.split("@")[1].split("/")[0]


def test_a_failing_revision_leaves_the_previous_revision(database: str, tmp_path: Path) -> None:
    """One run, one transaction: the revisions before the failing one are rolled back too."""
    start = REVISIONS[0]
    assert finish(migrate(database, "--to", start))[0] == 0
    before = columns(database)
    (tmp_path / "9999_fails.py").write_text(FAILING_REVISION.format(head=HEAD))
    code, lines = finish(migrate(database, "--extra-versions", str(tmp_path)))
    assert code == 1
    [failed] = lines
    assert failed["message"] == "migration_failed" and failed["level"] == "error"
    assert "division by zero" in failed["error"] and "[SQL: SELECT 1 / 0]" in failed["error"]
    assert failed["revision"] == start
    assert failed["detail"] == f"rolled back: the database stays at revision {start}"
    assert revision(database) == [start]
    assert columns(database) == before  # neither "doomed" nor any revision after start


def test_a_table_made_by_create_all_is_adopted(database: str) -> None:
    sql(database, PRE_MIGRATIONS_TABLE)
    sql(database, "INSERT INTO items (name, created_at) VALUES ('kept', now())")
    code, lines = finish(migrate(database))
    assert code == 0, lines
    assert revision(database) == [HEAD]
    assert sql(database, "SELECT name FROM items") == [("kept",)]


def test_a_database_newer_than_the_code_is_left_alone(database: str) -> None:
    assert finish(migrate(database))[0] == 0
    sql(database, "UPDATE alembic_version SET version_num = '9998'")
    code, lines = finish(migrate(database))
    assert code == 0
    assert [line["message"] for line in lines] == ["schema_newer_than_code", "migrations_complete"]
    assert revision(database) == ["9998"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "nowhere.invalid:5432"])
def test_a_database_url_pointing_nowhere_fails_fast_with_one_line(host: str) -> None:
    host = host.format(port=free_port())
    started = time.monotonic()
    code, lines = finish(migrate(f"postgresql://app@{host}/app"), timeout_s=30)
    # The connect timeout is 2 s (+1 s bound); interpreter start-up comes on top.
    assert time.monotonic() - started < 15
    assert code == 1
    [line] = lines
    assert line["message"] == "migration_failed" and line["host"] == host
    assert line["error"].startswith("cannot connect")


def test_readiness_waits_for_the_migration_and_the_app_runs_no_ddl(database: str) -> None:
    service = ServiceProcess(env={"DATABASE_URL": database, "WEB_CONCURRENCY": "1"}).start()
    try:
        response = httpx.get(f"{service.url}/health/ready", timeout=5)
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["failing"] == ["schema"] and body["status"] == "not_ready"
        schema = body["checks"]["schema"]
        assert schema["schema"] == "public" and schema["revision"] == "none"
        assert schema["required_revision"] == HEAD
        assert schema["error"] == "schema_behind"  # the body's code; the text is logged
        logged = service.wait_for_event("readiness_check_failed", check="schema")
        assert f"this code needs {HEAD}" in logged["error"]
        assert sql(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []

        assert finish(migrate(database))[0] == 0
        wait_for(  # no restart: the next probe reads the revision again
            lambda: httpx.get(f"{service.url}/health/ready", timeout=5).status_code == 200,
            10,
            what="readiness once migrated",
        )
        ready = httpx.get(f"{service.url}/health/ready", timeout=5).json()
        assert ready["checks"]["schema"]["revision"] == HEAD
        body = {"name": "after", "category": "books"}  # revision 0002's column, via the API
        created = httpx.post(f"{service.url}/api/items", json=body, timeout=5)
        assert created.status_code == 201, created.text
        read = httpx.get(f"{service.url}/api/items/{created.json()['id']}", timeout=5).json()
        assert read["category"] == "books"
    finally:
        service.stop()


def test_migrate_on_start_migrates_postgresql_once(database: str) -> None:
    service = ServiceProcess(
        env={"DATABASE_URL": database, "MIGRATE_ON_START": "true", "WEB_CONCURRENCY": "2"}
    ).start(wait="/health/ready")
    try:
        assert revision(database) == [HEAD]
        applied = [r["revision"] for r in service.events("migration_applied")]
        assert sorted(applied) == sorted(REVISIONS)  # two workers, serialized: applied once
    finally:
        service.stop()
