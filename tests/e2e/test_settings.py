"""The suite's settings: make/e2e.mk's defaults, and overrides from the environment."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.settings import BACKING_MANIFEST, KIND_CONFIG, VALUES_FILE, E2ESettings


def test_defaults_match_make(tmp_path: Path) -> None:
    s = E2ESettings.from_env({}, root=tmp_path)
    assert (s.cluster, s.context, s.namespace, s.release) == (
        "fastapi-app-e2e",
        "kind-fastapi-app-e2e",
        "fastapi-app-e2e",
        "fastapi-app",
    )
    assert s.url == "http://127.0.0.1:30080"
    assert (s.kubectl, s.helm) == ("kubectl", "helm")  # nothing in tmp_path/.venv, .tools
    assert s.docker == "docker"
    assert s.chart == tmp_path / "deploy/helm/fastapi-app"
    assert s.artifacts == tmp_path / "var/e2e"
    assert (s.image_repository, s.tag, s.next_tag) == ("fastapi-app", "e2e", "e2e-next")
    assert s.drill_rate == 40 and not s.required
    assert s.selector == "app.kubernetes.io/name=fastapi-app,app.kubernetes.io/instance=fastapi-app"
    assert VALUES_FILE.is_file() and KIND_CONFIG.is_file() and BACKING_MANIFEST.is_file()


def test_environment_overrides(tmp_path: Path) -> None:
    venv_kubectl = tmp_path / ".venv/bin/kubectl"
    venv_kubectl.parent.mkdir(parents=True)
    venv_kubectl.write_text("")
    venv_kubectl.chmod(0o755)
    s = E2ESettings.from_env(
        {
            "KIND_CLUSTER": "mine",
            "E2E_NODE_PORT": "31000",
            "E2E_HELM": "/opt/helm",
            "E2E_DOCKER": "/usr/local/bin/docker",
            "E2E_ARTIFACTS": "/abs/out",
            "E2E_REQUIRED": "1",
            "E2E_DRILL_RATE": "25",
        },
        root=tmp_path,
    )
    assert (s.cluster, s.context, s.url) == ("mine", "kind-mine", "http://127.0.0.1:31000")
    assert (s.kubectl, s.helm) == (str(venv_kubectl), "/opt/helm")
    # make e2e-kubectl's kubectl (the cluster's version) wins over the venv's (newer).
    pinned = tmp_path / ".tools/bin/kubectl"
    pinned.parent.mkdir(parents=True)
    pinned.write_text("")
    pinned.chmod(0o755)
    assert E2ESettings.from_env({}, root=tmp_path).kubectl == str(pinned)
    assert s.docker == "/usr/local/bin/docker"
    assert s.artifacts == Path("/abs/out") and s.required and s.drill_rate == 25
    assert (
        E2ESettings.from_env({"E2E_CONTEXT": "kind-x", "E2E_URL": "http://h:1/"}).url
        == "http://h:1"
    )
