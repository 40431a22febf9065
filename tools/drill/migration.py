# Usage: python -m tools.drill.migration [--control] [--replicas 3] [--rate 150] [--json out.json]
"""The rolling-update drill across a schema change (make drill-migration), on PostgreSQL.

The previous release is real code: the `service/` folder of PREVIOUS_RELEASE, the commit
just before schema revision 0002 landed (git archive into the run folder). It knows
revision 0001 only. The drill, like a deploy:
  1. migrates a fresh PostgreSQL with the previous release's own command (its deploy did);
  2. upgrade: N replicas of the previous release serve under constant load through HAProxy;
     the current `python -m service.data.migrate` runs as the Helm hook would (expand:
     0001 -> 0002, while the old replicas serve); then each replica is replaced by the
     current code as in `make drill`. With one old and one new replica in rotation, items
     are written through each and read through the other (directly, by port);
  3. rollback: N replicas of the current code are replaced by the previous release on the
     expanded schema (a revision it does not know: it must stay ready and serve), the same
     cross-version reads and writes in the middle; at the end, every row written by the
     load is there and the current code's `category` values survived the old code.
Zero failed requests in both phases. The control (--control) applies a deliberately
breaking revision instead (tools/drill/breaking_versions: a column rename without
expand/contract) and passes only if requests failed because of it: item requests answered
503 (the database error) once the migration started, the cross-version writes too, and
nothing else failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from tools import REPO_ROOT
from tools.drill.haproxy import failures_in_log
from tools.drill.load import DEFAULT_MIX, LoadConfig, default_kinds, parse_mix, run_drill
from tools.drill.local import LocalDrill, LocalSettings
from tools.drill.replica import Replica
from tools.drill.results import (
    Event,
    RequestResult,
    Summary,
    Timeline,
    render,
    to_dict,
    verdict,
)

# The previous release: HEAD just before the commit that added schema revision 0002
# ("Schema revision 0002, an expand step: items.category ..."). Its code knows 0001 only.
PREVIOUS_RELEASE = "c7d2a4149c7c3a220f20d304247eb41b8b30c035"
BREAKING_VERSIONS = Path(__file__).resolve().parent / "breaking_versions"
EXPAND_REVISIONS = ["0002"]  # what the current migration applies over the previous release
MIX = "fast=50,items=30,items_write=18,long=2"  # more database traffic than `make drill`
PREVIOUS, CURRENT = "previous", "current"
RENAME_KINDS = {"items", "items_write"}  # the load's requests that read or write items.name
Check = Callable[[Replica, Replica, Timeline], Awaitable[list[str]]]


def export_release(commit: str, dest: Path) -> None:
    """The `service/` folder of `commit`, from git history, into dest."""
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, capture_output=True
    )
    if found.returncode != 0:
        raise RuntimeError(
            f"commit {commit[:12]} (the previous release) is not in this clone: fetch the "
            "full history (git fetch --unshallow)"
        )
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "service"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


async def migrate(code_dir: Path, url: str, *extra: Path) -> tuple[int, list[dict[str, Any]]]:
    """`python -m service.data.migrate` of the code in code_dir, as the hook Job runs it."""
    args = [arg for path in extra for arg in ("--extra-versions", str(path))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.data.migrate", *args,
        cwd=code_dir,
        env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(code_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    lines = []
    for line in out.decode(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            lines.append({"message": "not_json", "detail": line})
    return proc.returncode or 0, lines


class MigrationDrill(LocalDrill):
    """LocalDrill whose first replicas run one code folder and their replacements another;
    `before` runs ahead of the replacements (the hook), `mixed` after the first one."""

    def __init__(
        self,
        settings: LocalSettings,
        workdir: Path,
        dirs: tuple[Path, Path],
        versions: tuple[str, str],
        before: Callable[[Timeline], Awaitable[list[str]]] | None,
        mixed: Check | None,
    ) -> None:
        super().__init__(settings, workdir)
        n = settings.replicas
        for i, replica in enumerate(self.replicas):
            code = dirs[0] if i < n else dirs[1]
            replica.cwd = code
            replica.env = {
                **replica.env,
                "PYTHONPATH": str(code),  # `service` is imported from there, nowhere else
                "APP_VERSION": versions[0] if i < n else versions[1],
                "METRICS_ENABLED": "false",  # one METRICS_PORT for all: not needed here
            }
        self.versions = {r.name: versions[0] if i < n else versions[1]
                         for i, r in enumerate(self.replicas)}  # fmt: skip
        self.before = before
        self.mixed = mixed

    async def rollout(self, timeline: Timeline) -> list[str]:
        problems = await self.before(timeline) if self.before else []
        n = self.s.replicas
        for i, (old, new) in enumerate(zip(self.replicas[:n], self.replicas[n:], strict=True)):
            problems += await self.replace(old, new, self.s.endpoint_lag(i), timeline)
            if i == 0 and self.mixed is not None and n > 1:
                problems += await self.mixed(self.replicas[1], new, timeline)
        return problems


async def cross_version_check(
    old: Replica,
    new: Replica,
    versions: dict[str, str],
    timeline: Timeline,
    tag: str,
    control: bool = False,
) -> tuple[list[str], list[int]]:
    """Write through each version and read through the other; returns problems and the ids
    written by the current code with a category. In the control, both writes must fail with
    the database error: the rename broke both versions."""
    by = {versions[old.name]: old, versions[new.name]: new}
    prev, cur = by[PREVIOUS], by[CURRENT]
    problems: list[str] = []
    url = {r.name: f"http://127.0.0.1:{r.port}" for r in (prev, cur)}
    async with httpx.AsyncClient(timeout=10) as client:

        async def call(method: str, replica: Replica, path: str, **kw: Any) -> httpx.Response:
            return await client.request(method, url[replica.name] + path, **kw)

        refused = await call("POST", prev, "/api/items", json={"name": "x", "category": "c"})
        if refused.status_code != 422:  # extra="forbid": proof that it runs the old code
            problems.append(f"{prev.name} accepted category ({refused.status_code}): not old code")
        a = await call("POST", prev, "/api/items", json={"name": f"{tag}-by-previous"})
        b = await call("POST", cur, "/api/items", json={"name": f"{tag}-by-current",
                                                        "category": "drill"})  # fmt: skip
        if control:
            if (a.status_code, b.status_code) != (503, 503):
                problems.append(f"control: cross-version writes answered {a.status_code} "
                                f"{b.status_code}, expected 503 503 (the rename)")  # fmt: skip
            timeline.record("cross_version_checked", tag, problems=len(problems))
            return problems, []
        if a.status_code != 201 or b.status_code != 201:
            return [*problems, f"cross-version writes: {a.status_code} {b.status_code}"], []
        a_id, b_id = a.json()["id"], b.json()["id"]
        expect: list[tuple[Replica, int, dict[str, Any]]] = [
            (cur, a_id, {"name": f"{tag}-by-previous", "category": None}),
            (prev, b_id, {"name": f"{tag}-by-current"}),
            (cur, b_id, {"name": f"{tag}-by-current", "category": "drill"}),
        ]
        for replica, item_id, fields in expect:
            got = await call("GET", replica, f"/api/items/{item_id}")
            body = got.json() if got.status_code == 200 else {}
            if got.status_code != 200 or any(body.get(k) != v for k, v in fields.items()):
                problems.append(f"{versions[replica.name]} read item {item_id}: {got.text[:200]}")
        listed = await call("GET", prev, "/api/items?limit=500")
        if listed.status_code != 200:
            problems.append(f"previous code lists items: {listed.status_code}")
    timeline.record("cross_version_checked", tag, problems=len(problems))
    return problems, [b_id]


def rename_verdict(results: Sequence[RequestResult], events: Sequence[Event]) -> list[str]:
    """The control's verdict: item requests failed with the database error's 503 once the
    breaking migration started, and no request failed for any other reason."""
    started = next((e.t_s for e in events if e.name == "migration_started"), None)
    if started is None:
        return ["control run: the breaking migration did not start"]

    def by_rename(r: RequestResult) -> bool:
        return r.kind in RENAME_KINDS and r.status == 503 and r.due_s + r.latency_s >= started

    failed = [r for r in results if not r.ok]
    others = Counter(f"{r.kind} {r.status or r.error}" for r in failed if not by_rename(r))
    problems = []
    if len(failed) == sum(others.values()):
        problems.append("control run: no item request failed after the rename, so this drill "
                        "could not detect a breaking migration")  # fmt: skip
    if others:
        problems.append(f"control run: {others.total()} requests failed for another reason "
                        f"than the rename: {dict(others.most_common())}")  # fmt: skip
    return problems


@dataclasses.dataclass
class PhaseOutcome:
    name: str
    summary: Summary
    problems: list[str]
    by_version: dict[str, int]
    haproxy_failures: dict[str, int]


async def run_phase(
    name: str,
    settings: LocalSettings,
    load: LoadConfig,
    dirs: tuple[Path, Path],
    versions: tuple[str, str],
    before: Callable[[Timeline], Awaitable[list[str]]] | None,
    written: list[int],
    expect_failures: bool,
) -> PhaseOutcome:
    workdir = Path(tempfile.mkdtemp(prefix=f"fastapi-app-drill-{name.split()[0]}-"))
    holder: dict[str, MigrationDrill] = {}

    async def mixed(old: Replica, new: Replica, timeline: Timeline) -> list[str]:
        versions = holder["d"].versions
        problems, ids = await cross_version_check(
            old, new, versions, timeline, name, control=expect_failures
        )
        written.extend(ids)
        return problems

    drill = MigrationDrill(settings, workdir, dirs, versions, before, mixed)
    holder["d"] = drill
    load = dataclasses.replace(load, url=drill.url)
    try:
        await drill.start()
        outcome = await run_drill(load, drill.rollout, warmup_s=3.0, settle_s=3.0)
    finally:
        await drill.stop()
    failed = failures_in_log(drill.haproxy.log_lines(), settings.proxy_mode)
    if not settings.keep_dir:
        shutil.rmtree(workdir, ignore_errors=True)
    by_version: dict[str, int] = {}
    for server, count in outcome.summary.by_server.items():
        version = drill.versions.get(server, server)
        by_version[version] = by_version.get(version, 0) + count
    if expect_failures:
        problems = outcome.problems + rename_verdict(outcome.results, outcome.summary.events)
    else:
        problems = outcome.problems + verdict(outcome.summary)
    return PhaseOutcome(
        name,
        outcome.summary,
        problems,
        by_version,
        {f"{f.server} {f.status} {f.termination}": n for f, n in failed.most_common()},
    )


def print_phase(phase: PhaseOutcome) -> None:
    print(f"== {phase.name}")
    for line in render(phase.summary, show_events=True):
        print(line)
    print("per version      " + ", ".join(f"{k} {v:,}" for k, v in phase.by_version.items()))
    if phase.haproxy_failures:
        print(
            "haproxy log      " + ", ".join(f"{k}: {v}" for k, v in phase.haproxy_failures.items())
        )
    for problem in phase.problems:
        print(f"PROBLEM: {problem}")
    print(f"== {phase.name}: {phase.summary.failed:,} failed of {phase.summary.sent:,}", flush=True)


async def database_rows(url: str, ids: Sequence[int]) -> tuple[int, list[tuple[int, Any]]]:
    """(rows the load wrote, (id, category) of the given ids), read with SQL directly."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as conn:
            count = (
                await conn.execute(text("SELECT count(*) FROM items WHERE name LIKE 'drill-%'"))
            ).scalar_one()
            rows = await conn.execute(
                text("SELECT id, category FROM items WHERE id = ANY(:ids) ORDER BY id"),
                {"ids": list(ids)},
            )
            return int(count), [(int(r[0]), r[1]) for r in rows]
    finally:
        await engine.dispose()


def writes_answered(summary: Summary) -> int:
    stats = summary.latency.get("items_write")
    return stats.count if stats is not None else 0


async def run(args: argparse.Namespace) -> int:
    from tools.testbed.servers import PostgresServer

    top = Path(tempfile.mkdtemp(prefix="fastapi-app-migration-drill-"))
    previous_dir = top / "previous"
    export_release(args.previous, previous_dir)
    postgres = PostgresServer()
    await asyncio.to_thread(postgres.start)
    report: dict[str, Any] = {"previous_release": args.previous, "control": args.control}
    phases: list[PhaseOutcome] = []
    written: list[int] = []
    problems: list[str] = []
    try:
        code, lines = await migrate(previous_dir, postgres.url)
        print(f"== previous release {args.previous[:12]} migrated a fresh PostgreSQL: exit {code}")
        if code != 0:
            raise RuntimeError(f"the previous release's migration failed: {lines}")
        settings = LocalSettings(
            replicas=args.replicas,
            database_url=postgres.url,
            haproxy_bin=args.haproxy,
            keep_dir=args.keep_dir,
        )
        kinds = default_kinds()
        load = LoadConfig(
            url="http://127.0.0.1:1",
            rate=args.rate,
            duration_s=args.duration,
            max_duration_s=args.max_duration,
            kinds=kinds,
            mix=parse_mix(args.mix, set(kinds)),
        )

        async def hook(timeline: Timeline) -> list[str]:
            extra = (BREAKING_VERSIONS,) if args.control else ()
            timeline.record("migration_started", "hook")
            code, lines = await migrate(REPO_ROOT, postgres.url, *extra)
            done = [line for line in lines if line.get("message") == "migrations_complete"]
            applied = done[0]["applied"] if done else None
            timeline.record("migration_finished", "hook", code=code, applied=str(applied))
            report["migration"] = {"exit_code": code, "applied": applied}
            print(f"== migration beside the load: exit {code}, applied {applied}", flush=True)
            expected = EXPAND_REVISIONS + (["9001"] if args.control else [])
            if code != 0 or applied != expected:
                return [f"migration: exit {code}, applied {applied}, expected {expected}"]
            return []

        upgrade = await run_phase(
            "upgrade (previous -> current, expand migration beside the load)",
            settings, load, (previous_dir, REPO_ROOT), (PREVIOUS, CURRENT), hook, written,
            expect_failures=args.control,
        )  # fmt: skip
        phases.append(upgrade)
        print_phase(upgrade)
        if not args.control:
            rollback = await run_phase(
                "rollback (current -> previous, on the expanded schema)",
                settings, load, (REPO_ROOT, previous_dir), (CURRENT, PREVIOUS), None, written,
                expect_failures=False,
            )  # fmt: skip
            phases.append(rollback)
            print_phase(rollback)
            count, rows = await database_rows(postgres.url, written)
            wrote = sum(writes_answered(p.summary) for p in phases)
            print(f"== rows written by the load: {count:,} in the table, {wrote:,} answered 201")
            if all(p.summary.failed == 0 for p in phases) and count != wrote:
                problems.append(f"{wrote} writes answered 201 but {count} rows are in the table")
            if [category for _, category in rows] != ["drill"] * len(written) or not written:
                problems.append(f"category written by the current code, after rollback: {rows}")
    finally:
        await asyncio.to_thread(postgres.destroy)
        if not args.keep_dir:
            shutil.rmtree(top, ignore_errors=True)
    problems += [f"{p.name}: {problem}" for p in phases for problem in p.problems]
    for problem in problems:
        print(f"PROBLEM: {problem}")
    passed = not problems
    total_failed = sum(p.summary.failed for p in phases)
    print(f"== {'PASS' if passed else 'FAIL'}{' (control)' if args.control else ''}: "
          f"{total_failed:,} failed of {sum(p.summary.sent for p in phases):,}")  # fmt: skip
    if args.json:
        report |= {
            "passed": passed,
            "problems": problems,
            "phases": [
                {
                    "name": p.name,
                    "by_version": p.by_version,
                    "summary": to_dict(p.summary),
                    "haproxy_failures": p.haproxy_failures,
                }
                for p in phases
            ],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.drill.migration", description=__doc__)
    parser.add_argument("--control", action="store_true", help="a breaking migration instead")
    parser.add_argument("--previous", default=PREVIOUS_RELEASE, help="the previous release")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="minimum seconds per phase")
    parser.add_argument("--max-duration", type=float, default=300.0)
    parser.add_argument("--mix", default=MIX, help=f"default {MIX} (make drill: {DEFAULT_MIX})")
    parser.add_argument("--haproxy", default="haproxy")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-dir", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if shutil.which(args.haproxy) is None:
        print(f"error: {args.haproxy} not found (Debian: apt-get install haproxy)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
