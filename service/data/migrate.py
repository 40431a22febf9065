# Usage: python -m service.data.migrate [--sql] [--to REVISION]   (or: make migrate)
"""Migrate DATABASE_URL (default: the embedded SQLite file) to the revision this code needs.

Prints one JSON line per revision applied (`migration_applied`) and one summary
(`migrations_complete`), in the service's log schema. Running it again is a no-op; runs at
the same time wait for each other (PostgreSQL advisory lock). A database at a revision this
code does not know (a later release migrated it) is left alone with a warning, exit 0, so
the previous release's Job or MIGRATE_ON_START does not fail a rollback. On failure: one
`migration_failed` line naming the database's host and the revision it still has, exit 1.
`--sql` prints the PostgreSQL SQL instead of running it (`alembic upgrade --sql`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from service.config import SettingsError, load_settings
from service.data.migrations import HEAD
from service.data.migrations.runner import MigrationError, Outcome, describe, offline_sql, upgrade
from service.telemetry.logs import configure_logging, get_logger, startup_error_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = get_logger("service.migrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.data.migrate",
        description="Migrate DATABASE_URL to the schema revision this code needs.",
    )
    parser.add_argument("--to", default="heads", help="target revision (default: the head)")
    parser.add_argument(
        "--sql", action="store_true", help="print the PostgreSQL SQL instead (offline mode)"
    )
    parser.add_argument(
        "--from", dest="start", default=None, help="with --sql: the revision to start after"
    )
    parser.add_argument(
        "--extra-versions",
        type=Path,
        action="append",
        default=[],
        help="also the revisions in this folder (tests and drills); repeatable",
    )
    return parser


def log_outcome(outcome: Outcome, where: dict[str, object]) -> None:
    for step in outcome.applied:
        log.info(
            "migration_applied",
            revision=step.revision,
            down_revision=step.down_revision,
            description=step.description.strip().splitlines()[0] if step.description else "",
            **where,
        )
    if outcome.newer:
        log.warning(
            "schema_newer_than_code",
            revision=",".join(outcome.before),
            head=HEAD,
            detail="left as it is: a later release migrated it",
            **where,
        )
    log.info(
        "migrations_complete",
        revision_before=",".join(outcome.before) or None,
        revision=",".join(outcome.after) or None,
        head=HEAD,
        applied=[step.revision for step in outcome.applied],
        **where,
    )


async def migrate_at_start(url: str) -> None:
    """The app's own migration at start (embedded SQLite, MIGRATE_ON_START): the same lines
    as the command; a failure stops the worker (a schema it cannot reach is no state to
    serve from; the restart retries)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    where = describe(url)
    try:
        outcome = await upgrade(url)
    except MigrationError as exc:
        log.error("migration_failed", error=str(exc)[:500], **where)
        raise RuntimeError(f"migration at start failed: {exc}") from exc
    if outcome.applied or outcome.newer:
        log_outcome(outcome, where)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sql:
        sys.stdout.write(offline_sql(args.start, args.to, args.extra_versions))
        return EXIT_OK
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(startup_error_line(str(exc)) + "\n")
        return EXIT_USAGE
    configure_logging(settings.service_name, settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # our lines say what it did
    where = describe(settings.database_url)
    try:
        outcome = asyncio.run(upgrade(settings.database_url, args.to, args.extra_versions))
    except MigrationError as exc:
        kept = None if exc.kept is None else (",".join(exc.kept) or "none")
        log.error(
            "migration_failed",
            error=str(exc)[:500],
            revision=kept,
            detail=(
                f"rolled back: the database stays at revision {kept}"
                if kept is not None
                else "the database was not changed by this run"
                if "cannot connect" in str(exc)
                else "check the revision the database has"
            ),
            **where,
        )
        return EXIT_FAILED
    log_outcome(outcome, where)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
