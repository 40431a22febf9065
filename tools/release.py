"""One version everywhere: the project, the service's (APP_VERSION's default and the
OpenAPI version), the chart (version and appVersion), the image's default label, the
kustomize image tags and the CHANGELOG's latest release.

    python -m tools.release check          # exit 1, naming each file that disagrees
    python -m tools.release set 1.2.3      # write 1.2.3 everywhere (then: make kustomize-base)

`make release-version VERSION=1.2.3` runs `set`, regenerates the kustomize base from the
chart and runs `check`."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tools import REPO_ROOT

# Semantic versioning 2.0.0, without a leading "v".
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
UNRELEASED = "## [Unreleased]"


class Place:
    """Where one copy of the version is written: a file and a pattern whose group 2 is it."""

    def __init__(self, name: str, path: str, pattern: str) -> None:
        self.name = name
        self.path = path
        self.pattern = re.compile(pattern, re.MULTILINE)

    def read(self, root: Path) -> str | None:
        match = self.pattern.search((root / self.path).read_text())
        return match.group(2) if match else None

    def write(self, root: Path, version: str) -> None:
        file = root / self.path
        text, count = self.pattern.subn(lambda m: f"{m[1]}{version}{m[3]}", file.read_text(), 1)
        if count != 1:
            raise SystemExit(f"{self.path}: no {self.name} to set")
        file.write_text(text)


PLACES = [
    Place("project version", "pyproject.toml", r'^(version = ")([^"]+)(")'),
    Place("service version", "service/config.py", r'^(PACKAGE_VERSION = ")([^"]+)(")'),
    Place("chart version", "deploy/helm/fastapi-app/Chart.yaml", r"^(version: )(\S+)()"),
    Place("chart appVersion", "deploy/helm/fastapi-app/Chart.yaml", r'^(appVersion: ")([^"]+)(")'),
    Place("image label default", "Dockerfile", r"^(ARG APP_VERSION=)(\S+)()"),
    Place(
        "prod overlay image tag",
        "deploy/kustomize/overlays/prod/kustomization.yaml",
        r'^(    newTag: ")([^"]+)(")',
    ),
]
# Generated from the chart by `make kustomize-base`: read, never written here.
GENERATED = Place(
    "kustomize base image tag",
    "deploy/kustomize/base/deployment.yaml",
    r"^(\s+image: fastapi-app:)(\S+)()",
)
CHANGELOG = Place(
    "CHANGELOG latest release", "CHANGELOG.md", r"^(## \[)(\d[^\]]*)(\] - \d{4}-\d\d-\d\d)"
)


def versions(root: Path = REPO_ROOT) -> dict[str, str | None]:
    """Each place's version (None where the file holds none)."""
    return {
        f"{place.path} ({place.name})": place.read(root)
        for place in [*PLACES, GENERATED, CHANGELOG]
    }


def disagreements(root: Path = REPO_ROOT) -> list[str]:
    """Lines naming every place whose version differs from the project's."""
    found = versions(root)
    expected = found[f"{PLACES[0].path} ({PLACES[0].name})"]
    return [f"{where}: {version} (project: {expected})" for where, version in found.items()
            if version != expected]  # fmt: skip


def release_changelog(root: Path, version: str, today: datetime.date) -> None:
    """Unreleased entries become the `version` release; an empty Unreleased stays on top,
    and the compare links at the bottom follow."""
    file = root / CHANGELOG.path
    text = file.read_text()
    if f"## [{version}]" in text:
        raise SystemExit(f"CHANGELOG.md already has a {version} release")
    if UNRELEASED not in text:
        raise SystemExit(f"CHANGELOG.md has no '{UNRELEASED}' heading")
    text = text.replace(UNRELEASED, f"{UNRELEASED}\n\n## [{version}] - {today.isoformat()}", 1)
    link = re.search(r"^\[Unreleased\]: (\S+)/compare/v(\S+)\.\.\.HEAD$", text, re.MULTILINE)
    if link:
        base, previous = link.group(1), link.group(2)
        text = text.replace(
            link.group(0),
            f"[Unreleased]: {base}/compare/v{version}...HEAD\n"
            f"[{version}]: {base}/compare/v{previous}...v{version}",
        )
    file.write_text(text)


def set_version(
    root: Path, version: str, today: Callable[[], datetime.date] = datetime.date.today
) -> None:
    if not SEMVER.fullmatch(version):
        raise SystemExit(f"VERSION={version!r} is not a semantic version such as 1.2.3")
    release_changelog(root, version, today())
    for place in PLACES:
        place.write(root, version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="exit 1 if any place disagrees with pyproject.toml")
    setter = commands.add_parser("set", help="write VERSION everywhere")
    setter.add_argument("version")
    args = parser.parse_args(argv)
    if args.command == "set":
        set_version(REPO_ROOT, args.version)
        print(f"version {args.version} written; regenerate the kustomize base next")
        return 0
    problems = disagreements()
    for line in problems:
        print(f"version mismatch: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
