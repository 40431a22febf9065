"""Operational tools of the kit (run as modules: `python -m tools.<name>`)."""
