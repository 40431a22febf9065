"""The migration Job's own extension points (issue 26, item 3): its ServiceAccount, extra env,
envFrom, volumes and mounts, init containers (a native sidecar such as a Cloud SQL proxy) and
pod annotations, rendered as a hook and as a plain Job (whose name hashes its spec)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import CHART_DIR, FULLNAME, Manifest, Result, render, render_error

pytestmark = pytest.mark.chart

DB = {"secret": {"databaseUrl": "postgresql://u:p@db:5432/app", "apiTokens": "t0ken=alice"}}
PLAIN = {"useHelmHooks": False}
NO_TESTS = {"tests": {"enabled": False}}
CI_FILE = CHART_DIR / "ci/migrations-extensions-values.yaml"
PROXY: Manifest = {
    "name": "cloud-sql-proxy",
    "image": "registry.example.com/proxy:2.14",
    "restartPolicy": "Always",
    "args": ["--port=5432", "project:region:db"],
}


def values(migrations: Manifest, **more: Any) -> Manifest:
    hooks = migrations.get("useHelmHooks", True)
    return {**DB, **({} if hooks else NO_TESTS), "migrations": migrations, **more}


def job(result: Result) -> Manifest:
    return result.one("Job")


def pod(result: Result) -> Manifest:
    spec: Manifest = job(result)["spec"]["template"]["spec"]
    return spec


def container(result: Result) -> Manifest:
    (found,) = pod(result)["containers"]
    migrate: Manifest = found
    return migrate


BOTH_MODES = pytest.mark.parametrize("mode", [{}, PLAIN], ids=["hook", "plain"])


@BOTH_MODES
def test_extra_env_and_env_from_come_after_the_apps(mode: Manifest) -> None:
    result = render(
        values(
            {
                **mode,
                "extraEnv": [{"name": "PGAPPNAME", "value": "migrate"}],
                "extraEnvFrom": [{"secretRef": {"name": "migrate-extra"}}],
            },
            extraEnv=[{"name": "APP_ONLY", "value": "1"}],
            extraEnvFrom=[{"configMapRef": {"name": "app-flags"}}],
        )
    )
    env = [e["name"] for e in container(result)["env"]]
    assert env == ["SERVICE_NAME", "LOG_LEVEL", "DATABASE_URL", "APP_ONLY", "PGAPPNAME"]
    assert container(result)["envFrom"] == [
        {"configMapRef": {"name": "app-flags"}},
        {"secretRef": {"name": "migrate-extra"}},
    ]
    # The app's container gets none of the migration's.
    app_env = {e["name"] for e in result.app_container()["env"]}
    assert "PGAPPNAME" not in app_env
    assert {"secretRef": {"name": "migrate-extra"}} not in result.app_container()["envFrom"]


@BOTH_MODES
def test_extra_volumes_and_mounts(mode: Manifest) -> None:
    result = render(
        values(
            {
                **mode,
                "extraVolumes": [{"name": "certs", "secret": {"secretName": "db-certs"}}],
                "extraVolumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": True}],
            }
        )
    )
    assert [v["name"] for v in pod(result)["volumes"]] == ["tmp", "certs"]
    assert pod(result)["volumes"][1]["secret"] == {"secretName": "db-certs"}
    mounts = container(result)["volumeMounts"]
    assert mounts[-1] == {"name": "certs", "mountPath": "/certs", "readOnly": True}
    assert "certs" not in {v["name"] for v in result.pod_spec()["volumes"]}


@BOTH_MODES
def test_a_native_sidecar_proxy_runs_beside_the_migration(mode: Manifest) -> None:
    result = render(values({**mode, "initContainers": [PROXY]}))
    assert pod(result)["initContainers"] == [PROXY]
    assert pod(result)["restartPolicy"] == "Never"
    assert [c["name"] for c in pod(result)["containers"]] == ["migrate"]
    # The app's pods do not run it.
    assert "initContainers" not in result.pod_spec()


def test_a_native_sidecar_for_the_migration_is_refused_below_kubernetes_1_29() -> None:
    error = render_error(values({"initContainers": [PROXY]}), kube_version="1.28.0")
    assert "migrations.initContainers: cloud-sql-proxy has restartPolicy Always" in error
    plain = {**PROXY}
    del plain["restartPolicy"]
    assert pod(render(values({"initContainers": [plain]}), kube_version="1.28.0"))


@BOTH_MODES
def test_pod_annotations_and_labels(mode: Manifest) -> None:
    result = render(
        values({**mode, "podAnnotations": {"a.example/x": "1"}, "podLabels": {"db": "yes"}})
    )
    meta = job(result)["spec"]["template"]["metadata"]
    assert meta["annotations"] == {"a.example/x": "1"}
    assert meta["labels"]["db"] == "yes"


def test_the_plain_jobs_name_changes_with_each_extension() -> None:
    base = job(render(values(PLAIN)))["metadata"]["name"]
    names = {base}
    for extra in (
        {"serviceAccountName": "migrator"},
        {"extraEnv": [{"name": "X", "value": "1"}]},
        {"extraEnvFrom": [{"secretRef": {"name": "s"}}]},
        {"extraVolumes": [{"name": "v", "emptyDir": {}}]},
        {"extraVolumeMounts": [{"name": "tmp", "mountPath": "/scratch"}]},
        {"initContainers": [PROXY]},
        {"podAnnotations": {"a": "b"}},
    ):
        name = job(render(values({**PLAIN, **extra})))["metadata"]["name"]
        assert name.startswith(f"{FULLNAME}-migrate-"), name
        names.add(name)
    assert len(names) == 8


# --- the ServiceAccount -------------------------------------------------------------------


def service_account(migrations: Manifest, **more: Any) -> str:
    name: str = pod(render(values(migrations, **more)))["serviceAccountName"]
    return name


def test_as_a_hook_the_job_runs_as_default_while_the_chart_creates_the_apps() -> None:
    # The chart's ServiceAccount is created after the pre-install hooks.
    assert service_account({}) == "default"
    # One made outside the release exists before the install: the Job uses it.
    outside = {"serviceAccount": {"create": False, "name": "orders"}}
    assert service_account({}, **outside) == "orders"
    assert service_account({"serviceAccountName": "migrator"}) == "migrator"
    assert pod(render(values({})))["automountServiceAccountToken"] is False


def test_as_a_hook_naming_the_charts_own_service_account_is_refused() -> None:
    error = render_error(values({"serviceAccountName": FULLNAME}))
    assert f"migrations.serviceAccountName ({FULLNAME}) is the ServiceAccount this chart" in error
    # Without hooks it is applied with the Job: fine.
    assert service_account({**PLAIN, "serviceAccountName": FULLNAME}) == FULLNAME


def test_without_hooks_the_job_runs_as_the_apps_service_account_in_its_sync_wave() -> None:
    result = render(values(PLAIN))
    assert pod(result)["serviceAccountName"] == FULLNAME
    assert pod(result)["automountServiceAccountToken"] is False
    sa = result.one("ServiceAccount")["metadata"]
    assert sa["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    # Another ServiceAccount for the Job: the app's keeps the default wave.
    other = render(values({**PLAIN, "serviceAccountName": "migrator"}))
    assert "argocd.argoproj.io/sync-wave" not in (
        other.one("ServiceAccount")["metadata"].get("annotations") or {}
    )
    # As a hook nothing moves.
    hooked = render(values({})).one("ServiceAccount")["metadata"].get("annotations") or {}
    assert "argocd.argoproj.io/sync-wave" not in hooked


def test_migration_env_may_not_set_what_the_chart_sets() -> None:
    error = render_error(values({"extraEnv": [{"name": "DATABASE_URL", "value": "x"}]}))
    assert "migrations.extraEnv sets DATABASE_URL" in error


def test_the_ci_values_file_exercises_every_extension_point() -> None:
    result = render(files=[CI_FILE])
    spec = pod(result)
    assert spec["serviceAccountName"] == "orders-migrate"
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert "proxy-credentials" in {v["name"] for v in spec["volumes"]}
    assert "proxy-credentials" in {m["name"] for m in container(result)["volumeMounts"]}
    assert container(result)["envFrom"] and container(result)["env"][-1]["name"] not in {
        "SERVICE_NAME",
        "LOG_LEVEL",
        "DATABASE_URL",
    }
    assert job(result)["spec"]["template"]["metadata"]["annotations"]
