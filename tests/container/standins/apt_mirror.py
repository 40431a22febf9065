# Usage: python3 tests/container/standins/apt_mirror.py [SUITE]   (prints the mirror apt uses)
"""Find the Debian archive that this machine's apt already uses, for debootstrap.

The stand-in images are built from the same mirror as the host's own packages, read at
run time from the apt configuration, so no mirror host is ever written into the repository.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

APT_DIR = Path("/etc/apt")


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
            continue
        if line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        stanza[key] = value.strip()
    if stanza:
        yield stanza


def _sources_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = stanza.get("suites", "").split()
        components = stanza.get("components", "").split()
        for uri in stanza.get("uris", "").split():
            yield uri, suites, components


def _list_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 3:
            yield words[0], [words[1]], words[2:]


def find_mirror(suite: str, files: Iterable[Path]) -> str | None:
    """First archive URI serving `suite` with the main component (not the security archive)."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        entries = _sources_entries(text) if path.suffix == ".sources" else _list_entries(text)
        for uri, suites, components in entries:
            if suite in suites and "main" in components and "security" not in uri:
                return uri.rstrip("/")
    return None


def apt_source_files(apt_dir: Path = APT_DIR) -> list[Path]:
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in {".list", ".sources"})
    return [p for p in files if p.is_file()]


def main(argv: list[str]) -> int:
    suite = argv[1] if len(argv) > 1 else "bookworm"
    mirror = find_mirror(suite, apt_source_files())
    if mirror is None:
        print(f"no apt source for suite {suite!r} with component main", file=sys.stderr)
        return 1
    print(mirror)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
