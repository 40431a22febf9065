"""The layout docs/architecture.md draws holds: packages import only downwards, and no
module grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
# What each package may import from the service (besides itself).
ALLOWED = {
    "request": set(),
    "telemetry": {"config", "request"},
    "data": {"config", "request", "telemetry"},
    "server": {"config", "request", "telemetry"},
    "api": {"config", "request", "telemetry", "data", "server"},
}
MAX_MODULE_LINES = 400


def service_imports(path: Path) -> set[str]:
    """The first part below `service` of every service module the file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "service" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_downwards(package: str) -> None:
    modules = sorted((SERVICE / package).rglob("*.py"))
    assert modules
    for module in modules:
        imported = service_imports(module) - {package}
        assert imported <= ALLOWED[package], f"{module.relative_to(SERVICE)} imports {imported}"


def test_config_imports_nothing_of_the_service() -> None:
    assert service_imports(SERVICE / "config.py") == set()


def test_every_module_is_in_a_role_package_or_an_entry_point() -> None:
    top = {path.name for path in SERVICE.glob("*.py")}
    assert top == {"__init__.py", "main.py", "gunicorn_conf.py", "config.py"}
    packages = {
        path.name for path in SERVICE.iterdir() if path.is_dir() and path.name != "__pycache__"
    }
    assert packages == set(ALLOWED)


def test_no_module_over_400_lines() -> None:
    long = {
        str(path.relative_to(SERVICE)): lines
        for path in SERVICE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long
