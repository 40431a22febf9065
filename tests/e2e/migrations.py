"""What the kind suite reads about the migration step (pure functions).

The chart's migration Job is a helm hook deleted when it succeeds, so the suite keeps its own
marks: the Job's pods seen by a watch while helm runs (cluster.JobPodWatch), the schema
revision in `/health/ready` and in PostgreSQL's alembic_version (its row's xmin changes only
when a run applies a revision), and, for a failed Job (kept), its pods' logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from service.data.migrations import HEAD

Raw = dict[str, Any]
# psql's unaligned, tuples-only output of this query: "<xmin>|<version_num>" per row.
VERSION_QUERY = "SELECT xmin, version_num FROM alembic_version ORDER BY version_num"


def head() -> str:
    """The revision the code needs (service/data/migrations: REVISIONS[-1])."""
    return HEAD


def parse_versions(text: str) -> list[tuple[str, str]]:
    """`psql -tA` rows of VERSION_QUERY -> [(xmin, version_num)]."""
    rows = []
    for line in text.splitlines():
        if line.strip():
            xmin, _, version = line.strip().partition("|")
            if not version:
                raise ValueError(f"not a row of {VERSION_QUERY!r}: {line!r}")
            rows.append((xmin, version))
    return rows


def schema_problems(body: Mapping[str, Any]) -> list[str]:
    """`/health/ready`'s body must report the schema at the head revision."""
    schema = (body.get("checks") or {}).get("schema") or {}
    problems = []
    if body.get("status") != "ready":
        problems.append(f"status {body.get('status')!r}, not ready")
    if schema.get("healthy") is not True or schema.get("revision") != HEAD:
        problems.append(f"schema check {schema} is not healthy at revision {HEAD}")
    return problems


def job_pod_phases(observed: Mapping[str, Raw]) -> dict[str, str]:
    """pod name -> its last phase seen (the Job's pods, from a watch)."""
    return {name: str((pod.get("status") or {}).get("phase")) for name, pod in observed.items()}


def failed_migration_problems(records: Sequence[Raw], host: str) -> list[str]:
    """One failed run's log: exactly one migration_failed line, naming `host`, no revision
    applied."""
    failed = [r for r in records if r.get("message") == "migration_failed"]
    problems = []
    if len(failed) != 1:
        problems.append(f"{len(failed)} migration_failed lines, expected one: {failed}")
    elif failed[0].get("host") != host:
        problems.append(f"migration_failed names host {failed[0].get('host')!r}, not {host!r}")
    applied = [r for r in records if r.get("message") == "migration_applied"]
    if applied:
        problems.append(f"revisions applied by a failed run: {applied}")
    return problems


def pod_template_hashes(pods: Iterable[Raw]) -> dict[str, str]:
    """pod name -> its ReplicaSet's pod-template-hash."""
    return {
        str(p["metadata"]["name"]): str(
            (p["metadata"].get("labels") or {}).get("pod-template-hash")
        )
        for p in pods
    }


def replaced_pods(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What changed between two pod_template_hashes(): pods gone, new, or of another ReplicaSet."""
    problems = []
    if set(before) != set(after):
        gone, new = sorted(set(before) - set(after)), sorted(set(after) - set(before))
        problems.append(f"pods replaced: gone {gone}, new {new}")
    if set(before.values()) != set(after.values()):
        problems.append(
            f"ReplicaSets changed: {sorted(set(before.values()))} -> {sorted(set(after.values()))}"
        )
    return problems
