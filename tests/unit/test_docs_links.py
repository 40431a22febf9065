"""Every relative link in the repository's Markdown resolves: the file exists, and a
`#anchor` into a Markdown file names one of its headings (GitHub's slugs). The README stays
a first-visit page: at most 300 lines, the deep sections live under docs/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

MAX_README_LINES = 300

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+).+?\1")
HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:id|name)=\"([^\"]+)\"")
# `](target)` closes every inline link and image, nested ones included.
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def outside_fences(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    found = []
    fence = ""
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
        elif opening:
            fence = opening.group(1)
        else:
            found.append((number, line))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation but - and _ dropped,
    spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts as its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes in a Markdown file (repeated headings get -1, -2, ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in outside_fences(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(1) or "")
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path) -> list[str]:
    """`file:line: target: why` for each relative link of a Markdown file that leads nowhere."""
    problems = []
    for number, line in outside_fences(path.read_text(encoding="utf-8")):
        line = CODE_SPAN.sub("", line)  # `[x](y)` in code is an example, not a link
        targets = INLINE_LINK.findall(line) + HTML_LINK.findall(line)
        targets += REFERENCE_LINK.findall(line)
        for target in targets:
            if SCHEME.match(target) or target.startswith("//"):
                continue  # a URL, not a file of this repository
            where, _, anchor = unquote(target).partition("#")
            if not where:
                resolved = path
            elif where.startswith("/"):
                resolved = root / where.lstrip("/")
            else:
                resolved = path.parent / where
            label = f"{path.relative_to(root)}:{number}: {target}"
            if not resolved.exists():
                problems.append(f"{label}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{label}: no heading with that anchor in {resolved.name}")
    return problems


def markdown_files() -> list[Path]:
    """The repository's Markdown files: tracked, or new and not ignored."""
    git = require_tool("git")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.md"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    paths = [REPO_ROOT / name for name in sorted(set(listed)) if "node_modules" not in name]
    return [path for path in paths if path.is_file()]  # a deleted file can still be tracked


def test_every_relative_link_resolves() -> None:
    files = markdown_files()
    assert REPO_ROOT / "README.md" in files
    problems = [problem for path in files for problem in broken_links(path, REPO_ROOT)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_a_first_visit_page() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    lines = len(readme.splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move a deep section to docs/"
    )
    assert "make run" in readme and "make test" in readme


def test_the_checker_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "shown.png").write_bytes(b"")
    (tmp_path / "other.md").write_text("# Other page\n\n## What it (`really`) does, A/B\n")
    (tmp_path / "page.md").write_text(
        "# Top heading\n"
        "[fine](other.md#what-it-really-does-ab) ![fine](img/shown.png) [fine](#top-heading)\n"
        "[gone](missing.md) and ![gone](img/missing.png)\n"
        "[wrong anchor](other.md#what-it-does) [wrong here](#nowhere)\n"
        "`[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[ref]: other.md#other-page\n"
        "[url](https://example.com/missing.md)\n"
    )
    assert broken_links(tmp_path / "page.md", tmp_path) == [
        "page.md:3: missing.md: no such file",
        "page.md:3: img/missing.png: no such file",
        "page.md:4: other.md#what-it-does: no heading with that anchor in other.md",
        "page.md:4: #nowhere: no heading with that anchor in page.md",
    ]
