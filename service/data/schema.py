"""The `schema` readiness check: is the database at the revision this code needs?

Behind (an older revision, or none): not ready, naming the schema, the revision found and
the one needed; it turns ready as soon as the migration has run, without a restart. At the
head, or at a revision this code does not know (a later release migrated it: the rollback
case after an expand migration), it is ready; the unknown revision logs one warning.

Cheap: while behind, each probe reads alembic_version (a few ms); at or after the head the
answer is kept for RECHECK_SECONDS, and a re-read that fails keeps it (the `database` check
reports an outage; this one answers "is the schema new enough").
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.data.migrations import HEAD, VERSION_TABLE, is_behind, is_newer
from service.telemetry.logs import get_logger

log = get_logger(__name__)
RECHECK_SECONDS = 30.0


class SchemaBehind(Exception):
    """The database lacks a revision this code needs; `fields` go into /health/ready."""

    def __init__(self, schema: str, found: tuple[str, ...]) -> None:
        revision = ",".join(found) or "none"
        super().__init__(
            f'schema "{schema}" is at revision {revision}, this code needs {HEAD}: '
            "run the migrations (python -m service.data.migrate)"
        )
        self.fields = {"schema": schema, "revision": revision, "required_revision": HEAD}


def read_revisions(connection: Connection) -> tuple[str, tuple[str, ...]]:
    """(the schema's name, its alembic_version rows); no table: no revision."""
    if connection.dialect.name == "postgresql":
        schema = str(connection.execute(text("SELECT current_schema()")).scalar_one())
    else:
        schema = "main"
    if not inspect(connection).has_table(VERSION_TABLE):
        return schema, ()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()  # noqa: S608
    return schema, tuple(sorted(rows))


class SchemaCheck:
    def __init__(self, engine: AsyncEngine, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.engine = engine
        self.recheck_seconds = recheck_seconds
        self.schema = ""
        self.found: tuple[str, ...] | None = None  # None: never read
        self._read_at = float("-inf")
        self._warned: tuple[str, ...] | None = None

    @property
    def ready(self) -> bool:
        return self.found is not None and not is_behind(self.found)

    def _result(self, latency_ms: float, *, cached: bool) -> dict[str, Any]:
        found = self.found or ()
        result: dict[str, Any] = {
            "latency_ms": latency_ms,
            "schema": self.schema,
            "revision": ",".join(found) or "none",
            "required_revision": HEAD,
        }
        if cached:
            result["cached"] = True
        if is_newer(found):
            result["detail"] = "newer than this code (a later release migrated it)"
        return result

    async def check(self) -> dict[str, Any]:
        """The check's result fields; raises SchemaBehind while the database is older."""
        if self.ready and time.monotonic() - self._read_at < self.recheck_seconds:
            return self._result(0.0, cached=True)
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                schema, found = await conn.run_sync(read_revisions)
        except Exception:
            if self.ready:  # keep the last answer; the database check reports the outage
                return self._result(0.0, cached=True)
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        self.schema, self.found, self._read_at = schema, found, time.monotonic()
        if is_behind(found):
            raise SchemaBehind(schema, found)
        if is_newer(found) and self._warned != found:
            self._warned = found
            log.warning(
                "schema_newer_than_code",
                schema=schema,
                revision=",".join(found),
                head=HEAD,
                detail="serving: a later release migrated the database (expand step)",
            )
        return self._result(latency_ms, cached=False)
