"""kind e2e: the chart's migration step. The install's hook Job migrated the e2e PostgreSQL
to the code's head; a second `helm upgrade` runs the Job again and applies nothing; an
upgrade whose migration cannot reach its database fails with --atomic (helm 4:
--rollback-on-failure) before any pod is replaced, and the failed Job (kept) says which host
in one line."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.e2e import logs, migrations
from tests.e2e.cluster import Cluster, JobPodWatch
from tests.e2e.helm_version import rollback_flag

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
REPLICAS = 3
UNREACHABLE_HOST = "192.0.2.10:5432"  # TEST-NET-1: routed nowhere, and not in the egress rules


def alembic_versions(cluster: Cluster) -> list[tuple[str, str]]:
    done = cluster.kubectl(
        "exec", "deploy/postgres", "--", "psql", "-U", "app", "-d", "app", "-tA", "-c",
        migrations.VERSION_QUERY,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return migrations.parse_versions(done.stdout)


def upgrade(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    s = cluster.settings
    command = cluster.helm_args(
        "upgrade", s.release, str(s.chart), "--reuse-values", "--wait", "--timeout", "6m", *args
    )
    return subprocess.run(command, capture_output=True, text=True, timeout=420, check=False)


def test_the_install_migrated_to_the_head(cluster: Cluster) -> None:
    cluster.wait_settled(REPLICAS)
    body = httpx.get(f"{cluster.settings.url}/health/ready", timeout=5).json()
    assert not migrations.schema_problems(body), migrations.schema_problems(body)
    assert [v for _, v in alembic_versions(cluster)] == [migrations.head()]
    # The hook succeeded, so helm deleted the Job (hook-succeeded).
    job = cluster.kubectl("get", "job", cluster.settings.migration_job, "--ignore-not-found")
    assert job.returncode == 0 and not job.stdout.strip(), job.stdout


def test_a_second_upgrade_runs_the_job_again_and_applies_nothing(cluster: Cluster) -> None:
    cluster.wait_settled(REPLICAS)
    before = alembic_versions(cluster)
    pods_before = migrations.pod_template_hashes(cluster.pods())
    watch = JobPodWatch(cluster, cluster.settings.migration_job).start()
    done = upgrade(cluster)
    watch.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    phases = migrations.job_pod_phases(watch.pods)
    assert "Succeeded" in phases.values(), f"no pod of the migration Job succeeded: {phases}"
    # The version row was not rewritten: no revision was applied.
    assert alembic_versions(cluster) == before
    assert (
        migrations.replaced_pods(pods_before, migrations.pod_template_hashes(cluster.pods())) == []
    )


def test_a_failed_migration_stops_an_atomic_upgrade_before_any_pod_changes(
    cluster: Cluster,
) -> None:
    s = cluster.settings
    cluster.wait_settled(REPLICAS)
    pods_before = migrations.pod_template_hashes(cluster.pods())
    generation = cluster.deployment()["metadata"]["generation"]
    url = f"postgresql://app:e2e-only-password@{UNREACHABLE_HOST}/app"
    flag = rollback_flag(s.helm)  # --atomic (helm 3) or --rollback-on-failure (helm 4)
    started = time.monotonic()
    done = upgrade(cluster, flag, "--set", f"secret.databaseUrl={url}")
    took = time.monotonic() - started
    assert done.returncode != 0, f"the upgrade passed with an unreachable database: {done.stdout}"
    # Nothing of the Deployment changed: same pods, same ReplicaSet, same generation.
    assert (
        migrations.replaced_pods(pods_before, migrations.pod_template_hashes(cluster.pods())) == []
    )
    assert cluster.deployment()["metadata"]["generation"] == generation
    # The failed Job is kept for its logs; each of its pods says which host, once.
    job = cluster.kubectl("get", "job", s.migration_job, "-o", "json")
    assert job.returncode == 0, job.stderr
    status = json.loads(job.stdout)["status"]
    assert status.get("failed", 0) >= 1 and not status.get("succeeded"), status
    pods = cluster.pod_names(selector=f"batch.kubernetes.io/job-name={s.migration_job}")
    assert pods, "no pod of the failed migration Job"
    for pod in pods:
        parsed = logs.parse_log(cluster.log(pod, container="migrate"))
        assert not parsed.bad_lines, logs.describe_bad_lines(pod, parsed)
        problems = migrations.failed_migration_problems(parsed.records, UNREACHABLE_HOST)
        assert not problems, f"{pod}: {problems}"
    print(f"\nfailed migration: helm upgrade {flag} gave up after {took:.0f} s, no pod replaced")
    cluster.wait_settled(REPLICAS)
