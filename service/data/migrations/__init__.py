"""The schema's history: Alembic revisions in versions/, applied by `python -m
service.data.migrate` (runner.py), never by the app on PostgreSQL.

REVISIONS lists every revision this code knows, oldest first; the last one is the head the
code needs. The readiness check compares the database's revision with it without loading
Alembic; tests/unit/data/test_migrations.py keeps it equal to the files in versions/.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
REVISIONS: tuple[str, ...] = ("0001", "0002")
HEAD = REVISIONS[-1]
VERSION_TABLE = "alembic_version"


def is_behind(found: tuple[str, ...]) -> bool:
    """Whether a database at these revisions (its alembic_version rows) lacks something this
    code needs. A revision the code does not know is newer (a later release migrated it):
    that is not behind, so the previous release keeps serving after an expand migration."""
    if any(revision not in REVISIONS for revision in found):
        return False
    return HEAD not in found


def is_newer(found: tuple[str, ...]) -> bool:
    return any(revision not in REVISIONS for revision in found)
