"""The e2e kit's own artefacts, checked in CI where kind cannot run: the suite collects and
skips cleanly without a cluster, `make -n e2e` shows the whole sequence, the scripts pass
shellcheck, the workflows and manifests pass yamllint, and the e2e install renders."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import releases as e2e_releases
from tests.e2e.settings import (
    BACKING_MANIFEST,
    DEFAULT_NODE_PORT,
    KIND_CONFIG,
    VALUES_FILE,
    E2ESettings,
)
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT, free_port, wait_for

WORKFLOWS = REPO_ROOT / ".github/workflows"
SCRIPTS = [
    *sorted((REPO_ROOT / "scripts").glob("*.sh")),
    REPO_ROOT / "tests/e2e/install-kind.sh",
    REPO_ROOT / "tests/e2e/install-kubectl.sh",
]
E2E_MK = REPO_ROOT / "make/e2e.mk"
YAMLLINT_CONFIG = REPO_ROOT / "tests/e2e/yamllint.yaml"
# kind v0.33.0's image of Kubernetes 1.34 (the release notes list it with its digest).
NODE_IMAGE = (
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"
)
E2E_TESTS = {
    "test_kind_app.py::test_ready_through_the_nodeport_with_database_and_redis",
    "test_kind_app.py::test_traceparent_is_logged_as_trace_id_and_every_line_is_json",
    "test_kind_app.py::test_deleted_pod_finishes_its_long_task_and_shuts_down_in_order",
    "test_kind_downstream.py::test_one_trace_through_two_releases",
    "test_kind_drills.py::test_rollout_restart_under_load_loses_no_request",
    "test_kind_drills.py::test_image_tag_change_under_load_loses_no_request",
    "test_kind_migrations.py::test_the_install_migrated_to_the_head",
    "test_kind_netpol.py::test_an_unlabelled_pod_gets_no_answer_from_the_backend_but_one_from_the_frontend",
    "test_kind_migrations.py::test_a_second_upgrade_runs_the_job_again_and_applies_nothing",
    "test_kind_migrations.py::test_a_failed_migration_stops_an_atomic_upgrade_before_any_pod_changes",
    "test_kind_prod_overlay.py::test_prod_overlay_becomes_ready",
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without make's or the e2e suite's own variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAKE", "MFLAGS", "E2E_", "KIND", "PYTEST_"))
    }
    return env | extra


def run(
    args: list[str], env: dict[str, str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def pytest_e2e(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The e2e suite in a child pytest, with a kubeconfig that does not exist."""
    kubeconfig = str(tmp_path / "no-kubeconfig")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "e2e", *args]
    return run([*command, "tests/e2e"], clean_env(KUBECONFIG=kubeconfig, **env))


# -- the suite without a cluster ----------------------------------------------------------


def test_collect_only_imports_every_e2e_test(tmp_path: Path) -> None:
    done = pytest_e2e(tmp_path, "--collect-only", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    collected = {
        line.split("tests/e2e/", 1)[-1] for line in done.stdout.splitlines() if "::" in line
    }
    assert collected == E2E_TESTS


def test_without_a_cluster_every_e2e_test_skips_with_one_line(tmp_path: Path) -> None:
    done = pytest_e2e(tmp_path, "-rs", "-q", CI="true")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"{len(E2E_TESTS)} skipped" in out, out
    reasons = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert reasons, out
    for line in reasons:
        assert "no kind cluster for the e2e suite: no kubeconfig" in line, line
        assert "kind-fastapi-app-e2e" in line and "make e2e" in line, line


def test_under_make_e2e_a_missing_cluster_fails_instead(tmp_path: Path) -> None:
    done = pytest_e2e(tmp_path, "-q", E2E_REQUIRED="1")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "e2e needs its kind cluster" in out and "skipped" not in out, out


# -- make -n e2e ---------------------------------------------------------------------------


@cache
def dry_run(*variables: str) -> str:
    make = require_tool("make", "apt-get install make")
    done = run([make, "-n", "e2e", *variables], clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def in_order(text: str, needles: list[str]) -> list[str]:
    """The needles not found after the previous one."""
    missing, position = [], 0
    for needle in needles:
        found = text.find(needle, position)
        if found < 0:
            missing.append(needle)
        else:
            position = found + len(needle)
    return missing


def test_make_dry_run_shows_the_whole_sequence() -> None:
    out = dry_run()
    steps = [
        "KUBECTL_VERSION='v1.34.11' bash tests/e2e/install-kubectl.sh .tools/bin",
        "-m tests.e2e.prereqs docker=",
        "kind=kind kubectl=",
        "helm=",
        "kind get clusters",
        "kind create cluster --name fastapi-app-e2e --config var/e2e/kind-config.yaml",
        f"--image {NODE_IMAGE}",
        "bash scripts/e2e.sh check-cluster",
        "build",
        "-t fastapi-app:e2e .",
        "tag fastapi-app:e2e fastapi-app:e2e-next",
        "save -o var/e2e/images-fastapi-app-e2e.tar fastapi-app:e2e fastapi-app:e2e-next",
        "kind load image-archive var/e2e/images-fastapi-app-e2e.tar --name fastapi-app-e2e",
        "-m tests.e2e.backing > var/e2e/backing-services.yaml",
        "-m tests.e2e.backing load",
        "apply -f var/e2e/backing-services.yaml",
        "wait --for=condition=Available deployment/postgres deployment/redis",
        "-m tests.e2e.releases backend > var/e2e/values-backend.yaml",
        "-m tests.e2e.releases frontend > var/e2e/values-frontend.yaml",
        "image inspect -f '{{.Id}}' fastapi-app:e2e",
        "upgrade --install fastapi-app-backend deploy/helm/fastapi-app",
        "-f tests/e2e/values-e2e.yaml",
        "-f var/e2e/values-backend.yaml",
        "--set fullnameOverride=fastapi-app-backend --set replicaCount=1",
        "--wait",
        "upgrade --install fastapi-app deploy/helm/fastapi-app -f tests/e2e/values-e2e.yaml",
        "-f var/e2e/values-frontend.yaml",
        "--set replicaCount=3",
        '--set-string podAnnotations.fastapi-app/e2e-image-id="$image_id"',
        "--wait",
        '"nodePort":30080',
        "rollout status deployment/fastapi-app",
        "test fastapi-app-backend",
        "test fastapi-app ",
        "E2E_REQUIRED=1 .venv/bin/pytest -m e2e tests/e2e",
        "kind delete cluster --name fastapi-app-e2e",
    ]
    assert in_order(out, steps) == [], out
    assert "e2e-logs" in out  # saved when a step fails
    assert "load docker-image" not in out  # fails for attested images in containerd's store
    assert "--context kind-fastapi-app-e2e" in out and "--kube-context kind-fastapi-app-e2e" in out


def test_make_variables_reuse_keep_and_port() -> None:
    out = dry_run("KIND_CLUSTER=mine", "E2E_KEEP=1", "E2E_NODE_PORT=31080")
    assert "grep -qxF 'mine'" in out and "--name mine" in out
    assert "sed 's/30080/31080/g' tests/e2e/kind-config.yaml" in out
    assert '"nodePort":31080' in out and "--context kind-mine" in out
    assert 'if [ "1" = 1 ]; then' in out  # E2E_KEEP=1 keeps the cluster


def test_e2e_mk_and_settings_agree() -> None:
    text = E2E_MK.read_text()
    assert text.startswith("# Usage: make e2e")
    defaults = dict(re.findall(r"^(\w+) \?= (.*)$", text, flags=re.MULTILINE))
    assert defaults["KIND_CLUSTER"] == "fastapi-app-e2e"
    assert defaults["E2E_NAMESPACE"] == "fastapi-app-e2e"
    assert defaults["E2E_NODE_PORT"] == str(DEFAULT_NODE_PORT)
    assert defaults["E2E_REPLICAS"] == "3"
    assert defaults["E2E_ARTIFACTS"] == "var/e2e"


# -- scripts, workflows, YAML ----------------------------------------------------------------


def test_scripts_pass_shellcheck_and_say_how_to_run_them() -> None:
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck")
    assert SCRIPTS
    for script in SCRIPTS:
        head = script.read_text().splitlines()[:2]
        assert head[0].startswith("#!") and head[1].startswith("# Usage: "), script
    done = run([shellcheck, *map(str, SCRIPTS)], clean_env())
    assert done.returncode == 0, done.stdout + done.stderr


def test_e2e_script_without_a_step_prints_its_usage() -> None:
    done = run(["bash", "scripts/e2e.sh"], clean_env())
    assert done.returncode == 2 and "Usage: bash scripts/e2e.sh" in done.stderr


def test_workflows_and_e2e_yaml_pass_yamllint() -> None:
    yamllint = require_tool("yamllint", "make venv")
    targets = [str(WORKFLOWS), str(REPO_ROOT / "tests/e2e")]
    done = run([yamllint, "--strict", "-c", str(YAMLLINT_CONFIG), *targets], clean_env())
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_pass_actionlint() -> None:
    actionlint = require_tool("actionlint", "make venv (linux x86_64) or rhysd/actionlint")
    done = run([actionlint, *map(str, sorted(WORKFLOWS.glob("*.yml")))], clean_env())
    assert done.returncode == 0, done.stdout + done.stderr


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def steps(flow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in flow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", ["ci.yml", "e2e.yml"])
def test_workflow_actions_are_pinned_by_commit(name: str) -> None:
    """Every action by its commit, the release tag in a comment (Renovate keeps both)."""
    flow = workflow(name)
    assert flow["permissions"] == {"contents": "read"}
    uses = [step["uses"] for step in steps(flow) if "uses" in step]
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
    text = (REPO_ROOT / ".github/workflows" / name).read_text()
    for line in text.splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40}  # v\d+\.\d+\.\d+$", line), line
    for job in flow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 120


def test_ci_workflow_runs_lint_and_ci_run() -> None:
    runs = " ".join(step.get("run", "") for step in steps(workflow("ci.yml")))
    assert "make lint" in runs and "bash .ci/run" in runs
    # make lint runs the pre-commit hooks, shellcheck and yamllint among them.
    hooks = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "mypy", "shellcheck", "yamllint", "helm-lint"} <= ids


def test_e2e_workflow_runs_make_e2e_and_uploads_logs_on_failure() -> None:
    flow = workflow("e2e.yml")
    assert re.fullmatch(r"v\d+\.\d+\.\d+", flow["env"]["KIND_VERSION"])
    all_steps = steps(flow)
    names = [step["name"] for step in all_steps if "name" in step]
    (make_e2e,) = [s for s in all_steps if s.get("run", "").startswith("make e2e")]
    # A step timeout (unlike the job's) fails the step and lets the if: failure() steps run.
    (job,) = flow["jobs"].values()
    assert make_e2e["timeout-minutes"] + 10 <= job["timeout-minutes"]
    assert make_e2e["run"] == "make e2e E2E_KEEP=1"  # kept for the log step after a timeout
    # Once with helm 3, once with helm 4 (tools/install-helm.sh installs both).
    assert job["strategy"]["matrix"]["helm"] == ["helm", "helm4"]
    assert job["strategy"]["fail-fast"] is False
    assert job["env"]["E2E_HELM"] == ".tools/bin/${{ matrix.helm }}"
    uploads = [s["with"]["name"] for s in all_steps if "upload-artifact" in s.get("uses", "")]
    assert uploads and all(name.endswith("-${{ matrix.helm }}") for name in uploads), uploads
    installs = " ".join(s.get("run", "") for s in all_steps)
    assert "bash tools/install-helm.sh" in installs
    on_failure = [s for s in all_steps if s.get("if") == "failure()"]
    assert on_failure[0].get("run") == "test -d var/e2e/cluster-logs || make e2e-logs"
    assert on_failure[-1]["uses"].startswith("actions/upload-artifact@")
    assert on_failure[-1]["with"]["path"].rstrip("/") == "var/e2e"
    assert names.index(make_e2e["name"]) < names.index(on_failure[0]["name"])
    install = next(s["run"] for s in all_steps if "install-kind.sh" in s.get("run", ""))
    sysctl = next(s["run"] for s in all_steps if "sysctl" in s.get("run", ""))
    assert sysctl.endswith("fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288")
    assert names.index(next(s["name"] for s in all_steps if s.get("run") == sysctl)) < (
        names.index(make_e2e["name"])
    )
    assert "bash tests/e2e/install-kind.sh .tools/bin" in install


# -- the cluster, the install and the throwaway services -------------------------------------


def test_kind_config_maps_the_nodeport_of_a_three_node_cluster() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    (mapping,) = config["nodes"][0]["extraPortMappings"]
    assert mapping == {
        "containerPort": DEFAULT_NODE_PORT,
        "hostPort": DEFAULT_NODE_PORT,
        "listenAddress": "127.0.0.1",
        "protocol": "TCP",
    }


def render_e2e_install(*set_string: str) -> list[dict[str, Any]]:
    """The chart as `make e2e-install` installs the frontend release (its values files and
    --set flags, Kubernetes 1.37)."""
    helm = require_tool("helm", "bash tools/install-helm.sh")
    args = re.search(r"upgrade --install fastapi-app .*?--wait", dry_run(), flags=re.DOTALL)
    assert args is not None
    flags = re.findall(r"--set (\S+)", args.group(0))
    frontend = yaml.safe_dump(e2e_releases.frontend_values(E2ESettings.from_env({})))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        values.write(frontend)
        values.flush()
        done = run(
            [helm, "template", "fastapi-app", "deploy/helm/fastapi-app", "-f", str(VALUES_FILE),
             "-f", values.name, *[f"--set={f}" for f in flags],
             *[f"--set-string={f}" for f in set_string], "--kube-version", "1.37.0"],
            clean_env(),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_e2e_install_renders_three_replicas_a_nodeport_and_a_prestop() -> None:
    docs = render_e2e_install()
    (service,) = [d for d in docs if d["kind"] == "Service"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["port"] == 80
    assert service["metadata"]["name"] == deployment["metadata"]["name"] == "fastapi-app"
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    assert app["image"] == "fastapi-app:e2e" and app["imagePullPolicy"] == "Never"
    assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    values = yaml.safe_load(VALUES_FILE.read_text())["shutdown"]
    total = values["preStopSeconds"] + values["gracePeriodSeconds"] + values["cleanupSeconds"]
    assert pod["terminationGracePeriodSeconds"] >= total
    # Long tasks of the suite (at most preStop + 7 s) fit in the drain budget.
    assert values["gracePeriodSeconds"] > values["preStopSeconds"] + 7
    assert values["delaySeconds"] > 0  # kept-alive connections get Connection: close first


def test_backing_services_validate_strictly() -> None:
    validator = require_tool("kubernetes-validate", "make venv")
    done = run([validator, "--strict", "--kubernetes-version", "1.34.0", str(BACKING_MANIFEST)],
               clean_env())  # fmt: skip
    lines = (done.stdout + done.stderr).splitlines()
    problems = [line for line in lines if not line.startswith("INFO ")]
    assert done.returncode == 0 and not problems, "\n".join(problems)
    assert sum(" passed " in line for line in lines) == 4
    password = yaml.safe_load(VALUES_FILE.read_text())["secret"]["databaseUrl"]
    assert "e2e-only-password@postgres:5432/app" in password
    assert "e2e-only-password" in BACKING_MANIFEST.read_text()


def test_requirements_e2e_pins_the_kubernetes_client() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / "requirements-e2e.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", line) for line in lines), lines
    assert any(line.startswith("kubernetes==") for line in lines)
    dev = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements-e2e.txt" in dev


# -- make e2e itself, with stand-in tools --------------------------------------------------

IMAGE_ID = "sha256:" + "5e" * 32
MAKE_E2E_TIMEOUT_S = 600
STUB = """#!/usr/bin/env bash
# A stand-in for kind, docker, kubectl and helm: logs its arguments, answers what make asks.
state="$E2E_STUB_DIR/clusters"
echo "$(basename "$0") $*" >> "$E2E_STUB_DIR/calls.log"
case "$(basename "$0") $1 $2" in
  "kind get clusters") cat "$state" 2>/dev/null ;;
  "kind create cluster") echo "$4" > "$state" ;;
  "kind delete cluster") rm -f "$state" ;;
  "docker port "*) echo "127.0.0.1:30080" ;;
  "docker info "*) echo "27.0.0" ;;
  "docker image inspect") echo "IMAGE_ID" ;;
  "docker version "*) echo "linux/amd64" ;;
  "kind version "*) echo "kind v0.33.0 go1.24.2 linux/amd64" ;;
  "kubectl version --client") echo '{"clientVersion": {"major": "1", "minor": "34"}}' ;;
  "helm version --short") echo "v3.19.0+g3d8990f" ;;
  "helm4 version --short") echo "v4.1.4+g05fa379" ;;
esac
case "$(basename "$0") $*" in
  "helm"*" upgrade --install "*) [ -z "${E2E_STUB_SLEEP:-}" ] || sleep "$E2E_STUB_SLEEP" ;;
esac
exit 0
""".replace("IMAGE_ID", IMAGE_ID)


def stub_make(tmp_path: Path, artifacts: Path, *variables: str, helm: str = "helm") -> list[str]:
    """`make e2e` with stand-ins for kind, docker, kubectl and helm (written to tmp_path/bin;
    helm="helm4": one that says it is helm 4), and inotify limits that pass the
    prerequisite check whatever this machine's are."""
    make = require_tool("make", "apt-get install make")
    inotify = tmp_path / "inotify"
    inotify.mkdir(exist_ok=True)
    (inotify / "max_user_instances").write_text("8192\n")
    (inotify / "max_user_watches").write_text("1048576\n")
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    for name in ("kind", "docker", "kubectl", helm):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    tools = [f"KIND={stubs / 'kind'}", f"DOCKER={stubs / 'docker'}",
             f"E2E_KUBECTL={stubs / 'kubectl'}", f"E2E_HELM={stubs / helm}"]  # fmt: skip
    settings = [f"E2E_ARTIFACTS={artifacts}", f"E2E_INOTIFY_DIR={inotify}"]
    return [make, "--no-print-directory", "e2e", *tools, *settings, *variables]


@pytest.mark.timeout(MAKE_E2E_TIMEOUT_S + 60)  # make's own timeout first: it shows its output
@pytest.mark.parametrize(
    ("helm", "flag"), [("helm", "--atomic"), ("helm4", "--rollback-on-failure")]
)
def test_make_e2e_runs_every_step_saves_logs_on_failure_and_deletes_its_cluster(
    tmp_path: Path, helm: str, flag: str
) -> None:
    """`make e2e` with stand-ins for kind, docker, kubectl and helm (3, or 4 as E2E_HELM):
    the steps run in order; the suite then fails (no cluster answers), so the logs are saved
    and the cluster that make e2e created is deleted."""
    artifacts = tmp_path / "artifacts"
    env = clean_env(
        E2E_STUB_DIR=str(tmp_path),
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
        E2E_POSTGRES_IMAGE="mirror.invalid/postgres:17-alpine",
    )
    command = stub_make(tmp_path, artifacts, helm=helm)
    done = run(command, env, timeout_s=MAKE_E2E_TIMEOUT_S)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "make e2e: e2e-test failed" in out and "e2e needs its kind cluster" in out, out
    calls = (tmp_path / "calls.log").read_text()
    assert f"E2E_KUBECTL={tmp_path}/bin/kubectl: yours" in out, out  # nothing downloaded
    # The prerequisite check read the helm's version: the flag a failed upgrade rolls back with.
    assert f"{tmp_path}/bin/{helm} (a failed upgrade rolls back with {flag})" in out, out
    expected = [
        "docker info",
        "kind version",
        "kubectl version --client -o json",
        f"{helm} version --short",
        "kind get clusters",
        f"kind create cluster --name fastapi-app-e2e --config {artifacts}/kind-config.yaml",
        "docker port fastapi-app-e2e-control-plane 30080/tcp",
        "kubectl --context kind-fastapi-app-e2e wait --for=condition=Ready nodes --all",
        "docker build",
        "docker tag fastapi-app:e2e fastapi-app:e2e-next",
        f"docker save -o {artifacts}/images-fastapi-app-e2e.tar fastapi-app:e2e fastapi-app:e2e-",
        f"kind load image-archive {artifacts}/images-fastapi-app-e2e.tar --name fastapi-app-e2e",
        "kubectl --context kind-fastapi-app-e2e --namespace fastapi-app-e2e create namespace",
        "docker version --format {{.Server.Os}}/{{.Server.Arch}}",
        "docker image inspect --format {{.Id}} mirror.invalid/postgres:17-alpine",
        f"docker save --platform linux/amd64 -o {artifacts}/backing-images-fastapi-app-e2e.tar"
        " mirror.invalid/postgres:17-alpine redis:7-alpine",
        f"kind load image-archive {artifacts}/backing-images-fastapi-app-e2e.tar"
        " --name fastapi-app-e2e",
        f"apply -f {artifacts}/backing-services.yaml",
        "wait --for=condition=Available deployment/postgres deployment/redis",
        "docker image inspect -f {{.Id}} fastapi-app:e2e",
        f"{helm} --kube-context kind-fastapi-app-e2e --namespace fastapi-app-e2e upgrade"
        " --install fastapi-app-backend",
        f"-f {artifacts}/values-backend.yaml",
        f"podAnnotations.fastapi-app/e2e-image-id={IMAGE_ID}",
        f"{helm} --kube-context kind-fastapi-app-e2e --namespace fastapi-app-e2e upgrade"
        " --install fastapi-app ",
        f"-f {artifacts}/values-frontend.yaml",
        f"podAnnotations.fastapi-app/e2e-image-id={IMAGE_ID}",
        "patch service fastapi-app",
        "rollout status deployment/fastapi-app",
        f"{helm} --kube-context kind-fastapi-app-e2e --namespace fastapi-app-e2e test"
        " fastapi-app-backend",
        f"{helm} --kube-context kind-fastapi-app-e2e --namespace fastapi-app-e2e test fastapi-app ",
        "kind export logs",
        "get events -A",
        "kind delete cluster --name fastapi-app-e2e",
    ]
    assert in_order(calls, expected) == [], calls
    assert (artifacts / "kind-config.yaml").read_text() == KIND_CONFIG.read_text()
    assert not (artifacts / "images-fastapi-app-e2e.tar").exists()
    assert not (artifacts / "backing-images-fastapi-app-e2e.tar").exists()
    assert "docker pull" not in calls  # both images already there: pulled once, not again
    backing = (artifacts / "backing-services.yaml").read_text()
    assert "image: mirror.invalid/postgres:17-alpine" in backing, backing
    assert "image: redis:" in backing  # E2E_REDIS_IMAGE not set: the manifest's own
    frontend = yaml.safe_load((artifacts / "values-frontend.yaml").read_text())
    assert frontend["config"]["downstreamUrl"] == "http://fastapi-app-backend:80"
    assert (artifacts / "cluster-logs" / "events.txt").exists()
    assert not (artifacts / "created-fastapi-app-e2e").exists()  # deleted with the cluster
    assert not (tmp_path / "clusters").exists()


def sigint_as_at_a_terminal() -> None:
    """In the child: Ctrl-C's default action. A shell starts background jobs (`cmd &`)
    with SIGINT ignored, and an ignored signal stays ignored across exec, so a suite run
    that way would send make a Ctrl-C it never sees."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signal_number", "keep"),
    [(signal.SIGINT, "0"), (signal.SIGTERM, "0"), (signal.SIGINT, "1")],
    ids=["ctrl-c", "sigterm", "ctrl-c-keep"],
)
def test_an_interrupted_make_e2e_deletes_the_cluster_it_created(
    tmp_path: Path, signal_number: signal.Signals, keep: str
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) or SIGTERM to the group while helm
    installs: make e2e deletes the cluster it created, unless E2E_KEEP=1."""
    artifacts = tmp_path / "artifacts"
    env = clean_env(E2E_STUB_DIR=str(tmp_path), E2E_STUB_SLEEP="300")
    command = stub_make(tmp_path, artifacts, f"E2E_KEEP={keep}")
    calls = tmp_path / "calls.log"
    with subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True, preexec_fn=sigint_as_at_a_terminal,
    ) as make:  # fmt: skip
        try:
            wait_for(
                lambda: calls.exists() and "upgrade --install" in calls.read_text(),
                timeout_s=300, interval_s=0.2, what="make e2e at helm upgrade --install",
            )  # fmt: skip
            os.killpg(make.pid, signal_number)
            out, _ = make.communicate(timeout=120)
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
    assert make.returncode != 0, out
    assert "make e2e: e2e-helm-test" not in out and "e2e-test" not in calls.read_text()
    deleted = "kind delete cluster --name fastapi-app-e2e" in calls.read_text()
    if keep == "1":
        assert not deleted and (tmp_path / "clusters").exists(), out
        assert "E2E_KEEP=1: kind cluster fastapi-app-e2e kept" in out, out
    else:
        assert deleted and not (tmp_path / "clusters").exists(), out
        assert not (artifacts / "created-fastapi-app-e2e").exists()


def test_a_cluster_not_created_by_make_e2e_survives_an_interrupt(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    (tmp_path / "clusters").write_text("fastapi-app-e2e\n")  # there before make e2e
    env = clean_env(E2E_STUB_DIR=str(tmp_path), E2E_STUB_SLEEP="300")
    calls = tmp_path / "calls.log"
    with subprocess.Popen(
        stub_make(tmp_path, artifacts), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal,
    ) as make:  # fmt: skip
        try:
            wait_for(
                lambda: calls.exists() and "upgrade --install" in calls.read_text(),
                timeout_s=300, interval_s=0.2, what="make e2e at helm upgrade --install",
            )  # fmt: skip
            os.killpg(make.pid, signal.SIGINT)
            out, _ = make.communicate(timeout=120)
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
    assert "kind delete cluster" not in calls.read_text(), out
    assert "not created by make e2e, left as it is" in out, out


def test_the_node_image_is_pinned_by_digest_in_make_and_the_workflow() -> None:
    defaults = dict(re.findall(r"^(\w+) \?= (.*)$", E2E_MK.read_text(), flags=re.MULTILINE))
    assert defaults["E2E_NODE_IMAGE"] == NODE_IMAGE
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", NODE_IMAGE)
    flow = workflow("e2e.yml")
    assert flow["env"]["E2E_NODE_IMAGE"] == NODE_IMAGE
    assert flow["env"]["KIND_VERSION"] == "v0.33.0"  # the release that published NODE_IMAGE
    assert f"--image {NODE_IMAGE} " in dry_run()
    other = "kindest/node:v1.33.12@sha256:" + "0" * 64
    assert f"--image {other} " in dry_run(f"E2E_NODE_IMAGE={other}")
    assert "--image" not in dry_run("E2E_NODE_IMAGE=")  # the default of the kind installed


def test_the_image_id_annotation_renders_on_the_pods() -> None:
    image_id = "sha256:" + "ab" * 32
    docs = render_e2e_install(f"podAnnotations.fastapi-app/e2e-image-id={image_id}")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["fastapi-app/e2e-image-id"] == image_id


class _Releases(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A download server for kind releases: (its URL, the directory it serves)."""
    root = tmp_path / "releases"
    root.mkdir()
    handler = functools.partial(_Releases, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


MACHINE = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]
SYSTEM = os.uname().sysname.lower()


def published(tool: str, version: str, digest: str) -> tuple[str, str, str]:
    """What an installer downloads, laid out as its release server does: the binary's
    path, the checksum file's path, and that file's text for `digest`."""
    if tool == "kind":
        asset = f"{version}/kind-{SYSTEM}-{MACHINE}"
        return asset, f"{asset}.sha256sum", f"{digest}  kind-{SYSTEM}-{MACHINE}\n"
    asset = f"{version}/bin/{SYSTEM}/{MACHINE}/kubectl"
    return asset, f"{asset}.sha256", digest  # kubectl's: the bare digest


def install(tool: str, base: str, version: str, dest: Path) -> subprocess.CompletedProcess[str]:
    """tests/e2e/install-<tool>.sh against a download server at base."""
    prefix = tool.upper()
    env = clean_env(**{f"{prefix}_VERSION": version, f"{prefix}_DOWNLOAD_BASE": base})
    return run(["bash", f"tests/e2e/install-{tool}.sh", str(dest)], env, timeout_s=120)


@pytest.mark.parametrize(
    ("tool", "version", "prints"),
    [("kind", "v0.33.0", "kind v0.33.0 (stand-in)"), ("kubectl", "v1.34.11", "v1.34.11")],
)
def test_install_checks_the_checksum_and_installs(
    tmp_path: Path, releases: tuple[str, Path], tool: str, version: str, prints: str
) -> None:
    base, root = releases
    binary = f"#!/bin/sh\necho '{prints}'\n".encode()
    binary_path, sums_path, sums = published(tool, version, hashlib.sha256(binary).hexdigest())
    (root / binary_path).parent.mkdir(parents=True)
    (root / binary_path).write_bytes(binary)
    (root / sums_path).write_text(sums)
    done = install(tool, base, version, tmp_path / "bin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert prints in done.stdout and (tmp_path / "bin" / tool).is_file()
    (root / binary_path).write_bytes(binary + b"# tampered\n")
    done = install(tool, base, version, tmp_path / "other")
    assert done.returncode != 0 and not (tmp_path / "other" / tool).exists()


@pytest.mark.parametrize(
    ("tool", "version", "hints"),
    [
        (
            "kind",
            "v0.99.0",
            [
                "https://github.com/kubernetes-sigs/kind/releases",
                "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
            ],
        ),
        ("kubectl", "v1.99.0", ["https://kubernetes.io/docs/tasks/tools/"]),
    ],
)
def test_install_of_an_unpublished_version_fails_with_the_hint(
    tmp_path: Path, releases: tuple[str, Path], tool: str, version: str, hints: list[str]
) -> None:
    base, _ = releases
    done = install(tool, base, version, tmp_path / "bin")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"answered HTTP 404: is {version} a published release?" in done.stderr
    assert all(hint in done.stderr for hint in hints), done.stderr
    assert not (tmp_path / "bin" / tool).exists()


@pytest.mark.parametrize("tool", ["kind", "kubectl"])
def test_install_without_an_answer_says_so(tmp_path: Path, tool: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = install(tool, closed, "v1.34.11", tmp_path / "bin")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no answer from" in done.stderr and "published release" not in done.stderr


def test_install_kubectl_of_a_malformed_version_says_what_to_set(
    tmp_path: Path, releases: tuple[str, Path]
) -> None:
    # E2E_NODE_IMAGE without a version tag leaves make with no version to derive.
    done = install("kubectl", releases[0], "kindest/node", tmp_path / "bin")
    assert done.returncode == 1 and "set E2E_KUBECTL_VERSION or E2E_KUBECTL" in done.stderr
    assert not (tmp_path / "bin" / "kubectl").exists()


def test_make_derives_the_kubectl_version_from_the_node_image() -> None:
    other = "registry.example:5000/kindest/node:v1.36.4@sha256:" + "0" * 64
    assert "KUBECTL_VERSION='v1.36.4' bash tests/e2e/install-kubectl.sh" in dry_run(
        f"E2E_NODE_IMAGE={other}"
    )
