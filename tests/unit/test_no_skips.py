"""No test skips, or expects to fail, by itself: a missing prerequisite goes through
tests/support.py (missing() / require_tool()), which fails under CI=true instead."""

from __future__ import annotations

import ast

from tools.testbed.support import REPO_ROOT

TESTS = REPO_ROOT / "tests"
# pytest's, unittest's and a TestCase's ways to skip a test or expect it to fail.
SKIP_NAMES = frozenset(
    {
        "skip", "skipif", "xfail", "importorskip", "Skipped", "SkipTest",
        "skipIf", "skipUnless", "skipTest", "expectedFailure",
    }
)  # fmt: skip
SKIP_OWNERS = frozenset({"pytest", "pytest.mark", "mark", "unittest", "_pytest.outcomes"})
# Where a skip is allowed: (file relative to tests/, function).
ALLOWED = {
    ("support.py", "missing"),  # fails under CI=true, skips elsewhere
    ("support.py", "require_tool"),
    # No kind cluster: skips (CI runs `make test`, which leaves e2e out); under make e2e
    # (E2E_REQUIRED=1) the same fixture fails instead.
    ("e2e/conftest.py", "cluster"),
}


def skips(source: str, path: str) -> list[str]:
    """`path:line name` of every skip in source outside ALLOWED and tests/conftest.py's hooks."""
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        name = None
        # `skip` alone is also a plain word (a parameter, an option): only pytest's counts.
        if isinstance(node, ast.Attribute) and node.attr in SKIP_NAMES:
            if node.attr != "skip" or ast.unparse(node.value) in SKIP_OWNERS:
                name = node.attr
        elif isinstance(node, ast.ImportFrom):
            name = next((a.name for a in node.names if a.name in SKIP_NAMES), None)
        hook = path == "conftest.py" and function.startswith("pytest_")
        if name and not hook and (path, function) not in ALLOWED:
            found.append(f"{path}:{getattr(node, 'lineno', 0)} {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source), "")
    return found


def test_no_skip_outside_the_missing_prerequisite_helpers() -> None:
    found = []
    for file in sorted(TESTS.rglob("*.py")):
        found += skips(file.read_text(), file.relative_to(TESTS).as_posix())
    assert found == [], "skips not routed through tests/support.py missing():\n" + "\n".join(found)


def test_every_way_to_skip_is_found() -> None:
    """The control: each of these is a skip the scan must name."""
    sources = [
        "import pytest\ndef test_x():\n    pytest.skip('no tool')\n",
        "import pytest\npytest.importorskip('matplotlib')\n",
        "import pytest\n@pytest.mark.skip\ndef test_x(): pass\n",
        "import pytest\n@pytest.mark.skipif(True, reason='')\ndef test_x(): pass\n",
        "import pytest\npytestmark = pytest.mark.xfail(strict=True)\n",
        "import pytest\ndef test_x():\n    pytest.xfail('later')\n",
        "import pytest\nP = [pytest.param(1, marks=pytest.mark.skip)]\n",
        "from pytest import skip\n",
        "from pytest import mark\n@mark.skip\ndef test_x(): pass\n",
        "import unittest\n@unittest.skipIf(True, '')\ndef test_x(): pass\n",
        "import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n"
        "        self.skipTest('no')\n",
        "import unittest\ndef test_x():\n    raise unittest.SkipTest('no')\n",
    ]
    for source in sources:
        assert skips(source, "unit/test_x.py"), source
    assert skips("def run(skip):\n    return args.skip or skip\n", "unit/test_x.py") == []
    # The helpers themselves are allowed, only there; so are tests/conftest.py's hooks.
    helper = "import pytest\ndef missing(what):\n    pytest.skip(what)\n"
    assert skips(helper, "support.py") == []
    assert skips(helper, "unit/support.py") != []
    hook = "import pytest\ndef pytest_runtest_setup(item):\n    pytest.skip('x')\n"
    assert skips(hook, "conftest.py") == []
    assert skips(hook, "unit/conftest.py") != []
