"""The migration step (issue 14): a hook Job runs `python -m service.data.migrate` before
new code serves, with a hook Secret (inline DATABASE_URL) and a hook NetworkPolicy below it;
never for SQLite, and nothing when migrations.enabled is false."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import CHART_DIR, FULLNAME, RELEASE, Manifest, Result, render

pytestmark = pytest.mark.chart

DB_URL = "postgresql://u:p@db:5432/app"
# On PostgreSQL the chart wants API tokens (or auth.allowAnonymousWrites).
DB = {"secret": {"databaseUrl": DB_URL, "apiTokens": "t0ken=alice"}}
JOB = f"{FULLNAME}-migrate"
HOOK = "helm.sh/hook"
WEIGHT = "helm.sh/hook-weight"
DELETE = "helm.sh/hook-delete-policy"
SELECTOR = {"app.kubernetes.io/name": "fastapi-app", "app.kubernetes.io/instance": RELEASE}


def hooks(result: Result) -> list[Manifest]:
    return [o for o in result.objects() if HOOK in (o["metadata"].get("annotations") or {})]


def job(result: Result) -> Manifest:
    return result.one("Job")


def job_pod(result: Result) -> Manifest:
    spec: Manifest = job(result)["spec"]["template"]["spec"]
    return spec


def job_container(result: Result) -> Manifest:
    (container,) = job_pod(result)["containers"]
    found: Manifest = container
    return found


def database_ref(result: Result) -> Manifest:
    env = {e["name"]: e for e in job_container(result)["env"]}
    ref: Manifest = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    return ref


def named(result: Result, kind: str, name: str) -> Manifest:
    (found,) = [o for o in result.find(kind) if o["metadata"]["name"] == name]
    return found


def test_the_job_and_its_secret_are_pre_install_and_pre_upgrade_hooks_secret_first() -> None:
    result = render(DB)
    secret = named(result, "Secret", JOB)
    job_annotations = job(result)["metadata"]["annotations"]
    secret_annotations = secret["metadata"]["annotations"]
    for hook in (job_annotations, secret_annotations):
        assert hook[HOOK] == "pre-install,pre-upgrade"
    # The Secret exists before the Job is created (lower weight runs first).
    assert int(secret_annotations[WEIGHT]) < int(job_annotations[WEIGHT]) == 0
    assert secret_annotations[WEIGHT] == "-10"
    # A succeeded Job is deleted; a failed one is kept for its logs until the next run.
    assert job_annotations[DELETE] == "before-hook-creation,hook-succeeded"
    # The Secret (DATABASE_URL) goes once the event's hooks succeeded: helm deletes the
    # hook-succeeded hooks only after the last one (the Job) completed, never while it runs.
    # before-hook-creation replaces one a failed run left behind.
    assert secret_annotations[DELETE] == "before-hook-creation,hook-succeeded"
    assert secret["data"] == {"DATABASE_URL": "cG9zdGdyZXNxbDovL3U6cEBkYjo1NDMyL2FwcA=="}
    assert database_ref(result) == {"name": JOB, "key": "DATABASE_URL", "optional": False}
    # The release's own Secret is still there, and not a hook.
    assert HOOK not in (named(result, "Secret", FULLNAME)["metadata"].get("annotations") or {})


def test_no_hook_secret_outlives_a_successful_run() -> None:
    """helm uninstall leaves hooks behind: a Secret among them must be gone by then. Each
    hook Secret is deleted on success and created below every Job of its events, so it
    exists while they run (helm deletes hook-succeeded hooks after the event's last hook)."""
    result = render({**DB, "networkPolicy": {"enabled": True}})
    secrets = [o for o in hooks(result) if o["kind"] == "Secret"]
    jobs = [o for o in hooks(result) if o["kind"] == "Job"]
    assert secrets and jobs
    for secret in secrets:
        annotations = secret["metadata"]["annotations"]
        assert "hook-succeeded" in annotations[DELETE].split(","), secret["metadata"]["name"]
        assert "before-hook-creation" in annotations[DELETE].split(",")
        for hook_job in jobs:
            job_annotations = hook_job["metadata"]["annotations"]
            if set(job_annotations[HOOK].split(",")) & set(annotations[HOOK].split(",")):
                assert int(annotations[WEIGHT]) < int(job_annotations[WEIGHT])


def test_the_job_runs_the_migration_with_the_apps_image_and_limits() -> None:
    digest = "sha256:" + "ab" * 32
    values: dict[str, Any] = {
        **DB,
        "image": {"repository": "r.example/app", "tag": "1.2", "digest": digest},
        "imagePullSecrets": ["regcred"],
        "config": {"serviceName": "orders", "logLevel": "warning"},
        "migrations": {"backoffLimit": 4, "activeDeadlineSeconds": 120},
    }
    result = render(values)
    spec = job(result)["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (4, 120)
    pod = job_pod(result)
    container = job_container(result)
    assert pod["restartPolicy"] == "Never"
    assert container["command"] == ["python", "-m", "service.data.migrate"]
    assert container["image"] == result.app_container()["image"] == f"r.example/app:1.2@{digest}"
    assert container["imagePullPolicy"] == result.app_container()["imagePullPolicy"]
    assert pod["imagePullSecrets"] == result.pod_spec()["imagePullSecrets"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SERVICE_NAME"] == "orders" and env["LOG_LEVEL"] == "warning"
    assert set(container["resources"]) == {"requests", "limits"}
    defaults = render(DB)
    assert job(defaults)["spec"]["backoffLimit"] == 2
    # Below helm's default --timeout (5m): the Job fails with its reason before helm gives up.
    assert job(defaults)["spec"]["activeDeadlineSeconds"] == 240


def test_the_job_runs_as_locked_down_as_the_app() -> None:
    values: dict[str, Any] = {
        **DB,
        "nodeSelector": {"pool": "web"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "podSecurityContext": {"runAsUser": 20002},
    }
    result = render(values)
    pod, app_pod = job_pod(result), result.pod_spec()
    assert pod["securityContext"] == app_pod["securityContext"]
    assert job_container(result)["securityContext"] == result.app_container()["securityContext"]
    assert job_container(result)["securityContext"]["readOnlyRootFilesystem"] is True
    assert job_container(result)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == app_pod["volumes"][:1]
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod[key] == app_pod[key], key
    # The namespace's default, not the chart's ServiceAccount (it does not exist at
    # pre-install; tests/chart/test_migration_extensions.py), and no token.
    assert pod["serviceAccountName"] == "default"
    assert pod["automountServiceAccountToken"] is False


def test_the_jobs_pod_never_joins_the_service() -> None:
    values: dict[str, Any] = {
        **DB,
        "commonLabels": {"app.kubernetes.io/name": "fastapi-app", "team": "orders"},
        "migrations": {"podLabels": {"db-access": "true"}, "podAnnotations": {"a": "b"}},
    }
    result = render(values)
    template = job(result)["spec"]["template"]["metadata"]
    labels = template["labels"]
    assert not SELECTOR.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "migrate"
    assert labels["db-access"] == "true" and labels["team"] == "orders"
    assert template["annotations"] == {"a": "b"}
    assert result.one("Service")["spec"]["selector"] == SELECTOR


def test_disabled_or_sqlite_renders_no_hook() -> None:
    off = render({**DB, "migrations": {"enabled": False}})
    assert hooks(off) == [e for e in hooks(off) if e["kind"] == "Pod"]  # the helm test only
    assert off.find("Job") == []
    # The single-pod demo: embedded SQLite (no DATABASE_URL) or a SQLite URL migrates itself.
    assert render().find("Job") == []
    sqlite = render({"secret": {"databaseUrl": "sqlite+aiosqlite:////tmp/app.db"}})
    assert sqlite.find("Job") == []
    assert [s["metadata"]["name"] for s in sqlite.find("Secret")] == [FULLNAME]


def test_an_existing_secret_or_a_from_reference_is_read_directly() -> None:
    existing = render(
        {"secret": {"existingSecret": "creds", "existingSecretKeys": {"databaseUrl": "db-url"}}}
    )
    assert database_ref(existing) == {"name": "creds", "key": "db-url", "optional": False}
    assert existing.find("Secret") == []
    # The kustomize base's case: an existing Secret named like the release.
    same_name = render({"secret": {"existingSecret": FULLNAME}})
    assert database_ref(same_name)["name"] == FULLNAME and same_name.find("Secret") == []
    from_ref = render(
        {
            "secret": {
                "existingSecret": "creds",
                "databaseUrlFrom": {"name": "orders-db-app", "key": "uri"},
            }
        }
    )
    assert database_ref(from_ref) == {"name": "orders-db-app", "key": "uri", "optional": False}
    assert from_ref.find("Secret") == []
    # The Job reads what the app reads.
    assert database_ref(from_ref) == from_ref.secret_refs()["DATABASE_URL"]


def test_the_migration_network_policy_lets_the_job_reach_the_database() -> None:
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 5432}]}]
    values: dict[str, Any] = {
        **DB,
        "networkPolicy": {"enabled": True, "restrictEgress": True, "egress": egress},
    }
    result = render(values)
    policy = named(result, "NetworkPolicy", JOB)
    annotations = policy["metadata"]["annotations"]
    assert annotations[HOOK] == "pre-install,pre-upgrade" and annotations[WEIGHT] == "-10"
    assert annotations[DELETE] == "before-hook-creation"
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= job(result)["spec"]["template"]["metadata"]["labels"].items()
    # The app's policy does not select the Job's pod; this one does not select the app's.
    app_policy = named(result, "NetworkPolicy", FULLNAME)["spec"]["podSelector"]["matchLabels"]
    assert not app_policy.items() <= job(result)["spec"]["template"]["metadata"]["labels"].items()
    pod_labels = result.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= pod_labels.items()
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    assert spec["egress"][0]["ports"][0] == {"port": 53, "protocol": "UDP"}
    assert spec["egress"][1:] == egress
    open_egress = render({**DB, "networkPolicy": {"enabled": True}})
    assert named(open_egress, "NetworkPolicy", JOB)["spec"]["policyTypes"] == ["Ingress"]
    assert len(render(DB).find("NetworkPolicy")) == 0


def test_production_values_migrate_from_the_existing_secret() -> None:
    result = render(files=[CHART_DIR / "ci/production-values.yaml"])
    assert database_ref(result) == {"name": "orders-api-env", "key": "DATABASE_URL",
                                    "optional": False}  # fmt: skip
    assert {o["kind"] for o in hooks(result)} == {"Job", "NetworkPolicy", "Pod"}


def test_the_readme_says_why_a_hook_job_and_not_an_init_container() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    section = readme.split("## Migrations", 1)[1].split("\n## ", 1)[0]
    assert "initContainer" in section and "--atomic" in section
    assert "before-hook-creation" in section
