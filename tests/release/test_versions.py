"""One version everywhere: the files agree today, and `set` moves them all together."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from tools import REPO_ROOT
from tools.release import CHANGELOG, GENERATED, PLACES, disagreements, set_version, versions


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files that hold the version, copied with their relative paths."""
    for path in {place.path for place in [*PLACES, GENERATED, CHANGELOG]}:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / path, tmp_path / path)
    return tmp_path


def test_every_place_holds_the_project_version() -> None:
    assert disagreements() == [], "run: make release-version VERSION=<pyproject's version>"
    assert None not in versions().values()


def test_set_moves_every_place_and_releases_the_changelog(copy: Path) -> None:
    set_version(copy, "1.2.3", lambda: datetime.date(2027, 1, 2))
    found = versions(copy)
    generated = f"{GENERATED.path} ({GENERATED.name})"
    assert {v for k, v in found.items() if k != generated} == {"1.2.3"}
    # The kustomize base comes from the chart (make kustomize-base): until it is
    # regenerated, check names it.
    assert [line.split(" ")[0] for line in disagreements(copy)] == [GENERATED.path]
    changelog = (copy / "CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n## [1.2.3] - 2027-01-02\n" in changelog
    assert "[1.2.3]: https://github.com/OWNER/fastapi-app/compare/v0.1.0...v1.2.3" in changelog
    assert "[Unreleased]: https://github.com/OWNER/fastapi-app/compare/v1.2.3...HEAD" in changelog


def test_a_place_that_drifts_is_named(copy: Path) -> None:
    chart = copy / "deploy/helm/fastapi-app/Chart.yaml"
    chart.write_text(chart.read_text().replace('appVersion: "', 'appVersion: "9', 1))
    [problem] = disagreements(copy)
    assert problem.startswith("deploy/helm/fastapi-app/Chart.yaml (chart appVersion): 9")


@pytest.mark.parametrize("bad", ["v1.2.3", "1.2", "01.2.3", "1.2.3 "])
def test_a_bad_version_changes_nothing(copy: Path, bad: str) -> None:
    before = versions(copy)
    with pytest.raises(SystemExit, match="not a semantic version"):
        set_version(copy, bad)
    assert versions(copy) == before


def test_a_version_released_twice_is_refused(copy: Path) -> None:
    with pytest.raises(SystemExit, match=r"already has a 0\.1\.0 release"):
        set_version(copy, "0.1.0")
