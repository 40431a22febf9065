"""Operational tools of the kit (run as modules: `python -m tools.<name>`)."""

from pathlib import Path

# The repository's top folder, for every tool that runs a program or reads a file of it.
REPO_ROOT = Path(__file__).resolve().parent.parent
