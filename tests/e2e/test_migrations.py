"""The pure readers of the migration e2e tests (tests/e2e/migrations.py)."""

from __future__ import annotations

import pytest

from service.data.migrations import REVISIONS
from tests.e2e import migrations


def test_the_head_is_the_codes_last_revision() -> None:
    assert migrations.head() == REVISIONS[-1]


def test_psql_rows_are_read_and_anything_else_is_refused() -> None:
    assert migrations.parse_versions("745|0002\n\n") == [("745", "0002")]
    assert migrations.parse_versions("") == []
    with pytest.raises(ValueError, match="not a row"):
        migrations.parse_versions("ERROR:  relation does not exist")


def test_readiness_must_report_the_schema_at_the_head() -> None:
    head = migrations.head()
    ready = {"status": "ready", "checks": {"schema": {"healthy": True, "revision": head}}}
    assert migrations.schema_problems(ready) == []
    behind = {"status": "not_ready", "checks": {"schema": {"healthy": False, "revision": "0001"}}}
    assert len(migrations.schema_problems(behind)) == 2
    assert migrations.schema_problems({"status": "ready", "checks": {}}) != []


def test_a_failed_run_names_its_host_once_and_applies_nothing() -> None:
    host = "192.0.2.10:5432"
    line = {"message": "migration_failed", "host": host, "detail": "the database was not changed"}
    assert migrations.failed_migration_problems([{"message": "x"}, line], host) == []
    assert "2 migration_failed" in migrations.failed_migration_problems([line, line], host)[0]
    other = migrations.failed_migration_problems([{**line, "host": "db:5432"}], host)
    assert "names host 'db:5432'" in other[0]
    applied = migrations.failed_migration_problems(
        [{"message": "migration_applied", "revision": "0002"}, line], host
    )
    assert applied and "applied" in applied[0]


def test_replaced_pods_and_replica_sets_are_named() -> None:
    def pod(name: str, rs: str) -> dict[str, object]:
        return {"metadata": {"name": name, "labels": {"pod-template-hash": rs}}}

    before = migrations.pod_template_hashes([pod("a", "h1"), pod("b", "h1")])
    assert before == {"a": "h1", "b": "h1"}
    assert migrations.replaced_pods(before, dict(before)) == []
    after = migrations.pod_template_hashes([pod("a", "h1"), pod("c", "h2")])
    problems = migrations.replaced_pods(before, after)
    assert problems == [
        "pods replaced: gone ['b'], new ['c']",
        "ReplicaSets changed: ['h1'] -> ['h1', 'h2']",
    ]
    phases = migrations.job_pod_phases({"m-1": {"status": {"phase": "Succeeded"}}, "m-2": {}})
    assert phases == {"m-1": "Succeeded", "m-2": "None"}
