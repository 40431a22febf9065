"""The values table in the chart README is generated from values.yaml and the schema, and
is up to date; the generator refuses undocumented or unschema'd keys."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.rendering import CHART_DIR
from tests.support import REPO_ROOT
from tools import chart_values_doc

pytestmark = pytest.mark.chart


def test_values_table_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, "tools/chart_values_doc.py", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_value_is_in_the_table_with_type_and_default() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    table = readme.split(chart_values_doc.START, 1)[1].split(chart_values_doc.END, 1)[0]
    for row in (
        "| `shutdown.preStopSeconds` | integer | `5` |",
        "| `shutdown.gracePeriodSeconds` | integer | `30` |",
        "| `shutdown.cleanupSeconds` | integer | `10` |",
        "| `terminationGracePeriodSeconds` | integer or null | `null` |",
        "| `readinessProbe.periodSeconds` | integer | `2` |",
        "| `rollout.maxSurge` | integer or percentage | `1` |",
    ):
        assert row in table


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copy)
    return copy


def test_stale_table_is_reported(chart_copy: Path) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(
        values.read_text().replace(
            "  # Add the spread constraint.", "  # Spread the pods over nodes."
        )
    )
    assert chart_values_doc.main(["--check", "--chart", str(chart_copy)]) == 1
    assert chart_values_doc.main(["--chart", str(chart_copy)]) == 0
    assert "Spread the pods over nodes." in (chart_copy / "README.md").read_text()
    assert chart_values_doc.main(["--check", "--chart", str(chart_copy)]) == 0


def test_key_without_comment_is_refused(
    chart_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text().replace("  # Scrape interval.\n", ""))
    assert chart_values_doc.main(["--check", "--chart", str(chart_copy)]) == 2
    assert "serviceMonitor.interval: no comment" in capsys.readouterr().err


def test_key_missing_from_schema_is_refused(
    chart_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text() + "\n# Something new.\nnewKey: 1\n")
    assert chart_values_doc.main(["--check", "--chart", str(chart_copy)]) == 2
    assert "newKey: in values.yaml but not in values.schema.json" in capsys.readouterr().err


def test_comments_are_found_for_nested_keys_only() -> None:
    comments = chart_values_doc.key_comments(
        "# Top.\na:\n  # Inner.\n  b: 1\n  list:\n    - name: x\n"
        "      # Not ours.\n      value: y\n  # After the list.\n  c: 2\n"
    )
    assert comments == {"a": "Top.", "a.b": "Inner.", "a.c": "After the list."}
