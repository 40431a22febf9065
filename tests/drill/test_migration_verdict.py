"""The migration drill control's verdict (tools/drill/migration.py: rename_verdict): it
passes only when item requests failed with the rename's 503 after the migration started,
and nothing failed for another reason."""

from __future__ import annotations

from tools.drill.errors import ErrorKind
from tools.drill.migration import rename_verdict
from tools.drill.results import Event, RequestResult

STARTED = [Event(3.0, "migration_started", "hook")]


def result(
    kind: str, due_s: float, status: int | None, error: ErrorKind | None = None
) -> RequestResult:
    return RequestResult(0, kind, due_s, 0.01, status=status, error=error)


def test_item_requests_failed_by_the_rename_pass() -> None:
    results = [result("fast", 1, 200), result("items", 1, 200), result("items", 4, 503),
               result("items_write", 5, 503), result("fast", 5, 200)]  # fmt: skip
    assert rename_verdict(results, STARTED) == []


def test_nothing_failed_fails() -> None:
    problems = rename_verdict([result("items", 4, 200), result("fast", 4, 200)], STARTED)
    assert problems == [
        "control run: no item request failed after the rename, so this drill could not "
        "detect a breaking migration"
    ]


def test_failures_for_another_reason_fail() -> None:
    results = [result("items", 4, 503), result("fast", 4, 404), result("long", 5, None,
               ErrorKind.RESET), result("items", 2, 503), result("items", 4, 500)]  # fmt: skip
    assert rename_verdict(results, STARTED) == [
        "control run: 4 requests failed for another reason than the rename: "
        "{'fast 404': 1, 'long reset': 1, 'items 503': 1, 'items 500': 1}"
    ]


def test_only_other_failures_fail_twice() -> None:
    problems = rename_verdict([result("fast", 4, 503)], STARTED)
    assert len(problems) == 2 and "no item request failed" in problems[0], problems


def test_no_migration_fails() -> None:
    assert rename_verdict([result("items", 4, 503)], []) == [
        "control run: the breaking migration did not start"
    ]
