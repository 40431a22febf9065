"""Squawk lints each revision's PostgreSQL SQL (offline mode, as a DBA would run it) for
locking hazards; and it must reject the drill's deliberately breaking revision, or the lint
could not tell the two apart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from service.data.migrations import REVISIONS
from service.data.migrations.runner import offline_sql
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

# Rules a revision may break, with the reason. Revision 0001 writes down the table that
# create_all made before migrations existed (databases in use have exactly it): a new table
# locks nothing anyone waits for, and its column types are history, not a choice.
ALLOWED = {
    "0001": {"prefer-text-field", "prefer-bigint-over-int", "prefer-identity"},
}
# alembic_version, Alembic's own table, is created by the first revision's SQL.
PG_VERSION = "16"
BREAKING_VERSIONS = REPO_ROOT / "tools/drill/breaking_versions"


def squawk(
    sql: str, tmp_path: Path, name: str, exclude: set[str]
) -> subprocess.CompletedProcess[str]:
    binary = require_tool("squawk", "pip install squawk-cli (requirements-dev.txt)")
    path = tmp_path / f"{name}.sql"
    path.write_text(sql)
    args = [binary, f"--pg-version={PG_VERSION}", str(path)]
    if exclude:
        args.insert(1, f"--exclude={','.join(sorted(exclude))}")
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("revision", REVISIONS)
def test_revision_has_no_locking_hazard(revision: str, tmp_path: Path) -> None:
    index = REVISIONS.index(revision)
    start = REVISIONS[index - 1] if index else None
    result = squawk(offline_sql(start, revision), tmp_path, revision, ALLOWED.get(revision, set()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_squawk_rejects_a_column_rename(tmp_path: Path) -> None:
    """The control: the drill's breaking revision (a rename without expand/contract); it is
    part of the tree, so a control without it fails."""
    assert list(BREAKING_VERSIONS.glob("*.py")), f"no breaking revision in {BREAKING_VERSIONS}"
    sql = offline_sql(REVISIONS[-1], "heads", [BREAKING_VERSIONS])
    result = squawk(sql, tmp_path, "breaking", set())
    assert result.returncode != 0
    assert "renaming-column" in result.stdout
