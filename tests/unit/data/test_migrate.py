"""`python -m service.data.migrate` on the embedded SQLite: JSON lines, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from service.data.migrations import HEAD, REVISIONS
from tools.testbed.jsonlines import parse_json_lines
from tools.testbed.support import REPO_ROOT


def run(*args: str, env: dict[str, str]) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "service.data.migrate", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = parse_json_lines(proc.stdout) if not args else []
    return proc.returncode, lines, proc.stdout + proc.stderr


def test_prints_the_revisions_it_applied_then_nothing(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "SERVICE_NAME": "migrator"}
    code, lines, _ = run(env=env)
    assert code == 0
    applied = [line for line in lines if line["message"] == "migration_applied"]
    assert [line["revision"] for line in applied] == list(REVISIONS)
    assert all(line["service"] == "migrator" and line["level"] == "info" for line in lines)
    assert applied[0]["down_revision"] is None and applied[0]["description"]
    assert lines[-1]["message"] == "migrations_complete" and lines[-1]["revision"] == HEAD
    assert lines[-1]["path"] == f"{tmp_path}/cli.db"
    code, lines, _ = run(env=env)
    assert code == 0 and [line["applied"] for line in lines] == [[]]


def test_sql_mode_prints_postgresql_without_a_database() -> None:
    code, _, output = run("--sql", env={"DATABASE_URL": "postgresql://nobody@nowhere.invalid/x"})
    assert code == 0
    assert "CREATE TABLE items" in output and f"'{HEAD}'" in output


def test_a_bad_setting_is_one_line_and_exit_2() -> None:
    code, _, output = run(env={"DATABASE_URL": "mysql://x/y"})
    assert code == 2
    [line] = output.splitlines()
    assert json.loads(line)["message"] == "invalid_configuration"
