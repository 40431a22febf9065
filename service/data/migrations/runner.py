"""Apply the revisions: Alembic configured here, in code (no alembic.ini, no env.py), so the
image needs nothing beside the package.

On PostgreSQL one run is one transaction (transactional DDL): it takes a transaction-level
advisory lock first, so runs started together (several hook Jobs, MIGRATE_ON_START in many
pods) wait for each other and the later ones find nothing to do; a failure anywhere rolls
the whole run back and leaves the revision the database had before. SQLite has no
transactional DDL: runs on one file are serialized by a lock file beside it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import io
import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from service.config import async_database_url
from service.data.migrations import MIGRATIONS_DIR, VERSION_TABLE, VERSIONS_DIR

# Waiting for the database: as long as the app waits (database.CONNECT_TIMEOUT_SECONDS).
CONNECT_TIMEOUT_SECONDS = 2.0
# Waiting for another run's advisory lock (a Job's activeDeadlineSeconds bounds it too).
LOCK_WAIT_SECONDS = 120
# Each DDL statement may wait this long for its table lock: an ALTER TABLE queued behind a
# long transaction would otherwise block every query on the table queued behind it.
DDL_LOCK_TIMEOUT = "5s"
# And may run this long (a revision that backfills data sets its own with SET LOCAL).
DDL_STATEMENT_TIMEOUT = "60s"
# One fixed 64-bit key for pg_advisory_xact_lock, derived from the name so it is stable.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"fastapi-app schema").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Applied:
    revision: str
    down_revision: str | None
    description: str


@dataclass
class Outcome:
    before: tuple[str, ...]  # alembic_version rows before the run (empty: no revision)
    after: tuple[str, ...]
    applied: list[Applied] = field(default_factory=list)
    newer: bool = False  # the database has a revision this code does not know: left alone


class MigrationError(Exception):
    """A run that failed; the database still has `kept` (rolled back on PostgreSQL)."""

    def __init__(self, message: str, kept: tuple[str, ...] | None) -> None:
        super().__init__(message)
        self.kept = kept


def script_directory(extra_versions: Sequence[Path] = ()) -> ScriptDirectory:
    """The revisions: versions/, plus folders of further revisions (tests, the drill's
    deliberately breaking one)."""
    locations = [str(VERSIONS_DIR), *(str(Path(p).resolve()) for p in extra_versions)]
    return ScriptDirectory(str(MIGRATIONS_DIR), version_locations=locations)


def known_revisions(script: ScriptDirectory) -> set[str]:
    return {s.revision for s in script.walk_revisions()}


def describe(url: str) -> dict[str, Any]:
    """Where a URL points, without its password: for log lines."""
    parsed = make_url(async_database_url(url))
    if parsed.get_backend_name() == "sqlite":
        return {"database": "sqlite", "path": parsed.database or ":memory:"}
    host = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return {"database": parsed.get_backend_name(), "host": host, "dbname": parsed.database}


def _environment(
    script: ScriptDirectory, target: str, *, as_sql: bool = False, start: str | None = None
) -> EnvironmentContext:
    def upgrade_steps(rev: Any, _context: MigrationContext) -> Any:
        return script._upgrade_revs(target, rev)

    return EnvironmentContext(
        Config(),
        script,
        fn=upgrade_steps,
        as_sql=as_sql,
        starting_rev=start,
        destination_rev=target,
    )


def _postgres_preamble(execute: Any) -> None:
    """The lock, then the DDL timeouts; SET LOCAL ends with the transaction."""
    execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'")
    execute(f"SET LOCAL statement_timeout = '{LOCK_WAIT_SECONDS}s'")
    execute(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
    execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
    execute(f"SET LOCAL statement_timeout = '{DDL_STATEMENT_TIMEOUT}'")


def offline_sql(
    start: str | None = None, target: str = "heads", extra_versions: Sequence[Path] = ()
) -> str:
    """The PostgreSQL SQL of the revisions after `start` up to `target` (`alembic upgrade
    --sql`): what a DBA reviews and what Squawk lints."""
    buffer = io.StringIO()
    script = script_directory(extra_versions)
    with _environment(script, target, as_sql=True, start=start) as env:
        env.configure(
            dialect_name="postgresql",
            output_buffer=buffer,
            literal_binds=True,
            transactional_ddl=True,
            version_table=VERSION_TABLE,
        )
        with env.begin_transaction():
            _postgres_preamble(env.execute)
            env.run_migrations()
    return buffer.getvalue()


def _upgrade_sync(connection: Connection, script: ScriptDirectory, target: str) -> Outcome:
    postgres = connection.dialect.name == "postgresql"
    applied: list[Applied] = []

    def record(
        ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Any
    ) -> None:
        up = step.up_revision  # a Script: its doc is the revision file's docstring
        if step.is_upgrade and up is not None:
            down = up.down_revision
            doc = str(getattr(up, "doc", ""))
            applied.append(Applied(up.revision, down if isinstance(down, str) else None, doc))

    before: tuple[str, ...] | None = None
    try:
        with connection.begin():  # alembic runs inside it and leaves commit to us
            if postgres:
                _postgres_preamble(lambda sql: connection.execute(text(sql)))
            with _environment(script, target) as env:
                env.configure(
                    connection=connection,
                    on_version_apply=record,
                    version_table=VERSION_TABLE,
                )
                before = tuple(sorted(env.get_context().get_current_heads()))
                if any(rev not in known_revisions(script) for rev in before):
                    return Outcome(before, before, newer=True)
                env.run_migrations()
                after = tuple(sorted(env.get_context().get_current_heads()))
    except Exception as exc:
        kept = before if postgres else None  # SQLite: DDL already done stays done
        lines = [line for line in str(exc).splitlines() if not line.startswith("(Background")]
        raise MigrationError(f"{type(exc).__name__}: {' '.join(lines)}", kept) from exc
    return Outcome(before, after, applied)


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Serialize runs on one SQLite file (several workers migrating at start)."""
    path = make_url(url).database
    if not path or path == ":memory:":
        yield
        return
    fd = os.open(f"{path}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


async def upgrade(url: str, target: str = "heads", extra_versions: Sequence[Path] = ()) -> Outcome:
    """Migrate the database at `url` to `target`; a no-op when it is there (or newer)."""
    url = async_database_url(url)
    script = script_directory(extra_versions)
    sqlite = url.startswith("sqlite")
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_SECONDS}
    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    lock = _sqlite_file_lock(url) if sqlite else contextlib.nullcontext()
    try:
        await asyncio.to_thread(lock.__enter__)
        try:
            connection = engine.connect()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS + 1):
                    await connection.start()
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, TimeoutError):
                    reason = f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
                raise MigrationError(f"cannot connect: {reason}", None) from exc
            try:
                return await connection.run_sync(_upgrade_sync, script, target)
            finally:
                await connection.close()
        finally:
            lock.__exit__(None, None, None)
    finally:
        await engine.dispose()
